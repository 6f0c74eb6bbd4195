"""The console's pages, as functions of what they show. Every value is escaped
(``console.html``); every state-changing form carries the CSRF token."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tessera.console.gate import Admin
from tessera.console.html import (
    Html,
    button_form,
    esc,
    get_form,
    hidden,
    link,
    page,
    table,
    url,
    when,
)
from tessera.console.journey import Journey
from tessera.console.queries import SessionFilter, SessionPage, SessionView
from tessera.core.signals import Delivery
from tessera.store.ports import StoredAudit

__all__ = [
    "Ctx",
    "audit_view",
    "confirm_view",
    "error_view",
    "forbidden_view",
    "journey_view",
    "login_view",
    "session_view",
    "sessions_view",
    "signals_view",
]

_DEVICE_CHARS = 90
_SHOWN_IN_COLUMNS = frozenset({"subject", "tenant", "client"})
_JOURNEY_KEYS = ("correlation_id", "jti", "token_hash", "sid", "family_id")
_DECISION_CLASS = {"allowed": "allowed", "denied": "denied"}


@dataclass(frozen=True, slots=True)
class Ctx:
    """What every signed-in page needs: the console's base path, who is signed in and the
    CSRF token for this browser."""

    base: str
    admin: Admin
    csrf: str


def _nav(ctx: Ctx) -> Html:
    s, u = ctx.admin.session, ctx.admin.user
    return Html(
        f"<strong>Tessera console</strong>{link(ctx.base + '/sessions', 'Sessions')}"
        f"{link(ctx.base + '/audit', 'Audit')}{link(ctx.base + '/journey', 'Journey')}"
        f"{link(ctx.base + '/signals', 'Signals')}"
        f"<span class=who>{esc(u.username)} ({esc(u.tenant_id)}) · "
        f"<span id=my_roles>{esc(', '.join(sorted(ctx.admin.reach.roles)))}</span> · "
        f"{esc(s.acr)} · signed in {when(s.auth_time)} UTC</span>"
        + button_form(ctx.base + "/logout", {}, csrf=ctx.csrf, label="Sign out"))


def _page(ctx: Ctx, title: str, body: str) -> bytes:
    return page(title, Html(body), nav=_nav(ctx))


def _notice(text: str | None) -> str:
    return f"<p class=notice role=status>{esc(text)}</p>" if text else ""


def _text_input(name: str, label: str, value: object, *, kind: str = "text") -> Html:
    return Html(f"<label>{esc(label)}<input type={kind} name='{esc(name)}' "
                f"value='{esc(value)}'></label>")


def _status(revoked_at: float | None, reason: str | None) -> Html:
    if revoked_at is None:
        return Html("<span class=allowed>active</span>")
    return Html(f"<span class=denied>revoked</span> {when(revoked_at)} {esc(reason)}")


def _revoke_button(ctx: Ctx, kind: str, target: str, label: str) -> Html:
    if not ctx.admin.may_act:  # support: read-only
        return Html("")
    return button_form(ctx.base + "/revoke", {"kind": kind, "target": target}, csrf=ctx.csrf,
                       label=label, danger=True, name=f"revoke-{kind}")


def _device(user_agent: str | None) -> Html:
    if not user_agent:
        return Html("<span class=muted>unknown</span>")
    short = user_agent if len(user_agent) <= _DEVICE_CHARS else \
        user_agent[:_DEVICE_CHARS] + "…"
    return Html(f"<span title='{esc(user_agent)}'>{esc(short)}</span>")


def _username(ctx: Ctx, view: SessionView) -> Html:
    name = view.user.username if view.user else view.session.user_id
    return link(url(ctx.base + "/sessions", user_id=view.session.user_id, all=1), name)


# -- sessions --------------------------------------------------------------------------

def sessions_view(ctx: Ctx, criteria: SessionFilter, result: SessionPage,
                  notice: str | None) -> bytes:
    base = ctx.base + "/sessions"
    title = f"Sessions of {result.user.username}" if result.user else "Sessions"
    controls = [_text_input("username", "Username starts with", criteria.username),
                _text_input("tenant", "Tenant", criteria.tenant_id),
                Html("<label>Include revoked<input type=checkbox name=all value=1"
                     f"{' checked' if criteria.include_revoked else ''}></label>")]
    if criteria.user_id:
        controls.append(hidden("user_id", criteria.user_id))
    actions = []
    if result.user is not None:
        actions.append(_revoke_button(ctx, "user", result.user.user_id,
                                      f"Revoke every session of {result.user.username}"))
        actions.append(link(url(ctx.base + "/audit", subject=result.user.user_id),
                            "Audit events of this user"))
    if criteria.tenant_id and ctx.admin.reach.platform:  # tenant-wide: platform only
        actions.append(_revoke_button(ctx, "tenant", criteria.tenant_id,
                                      f"Revoke tenant {criteria.tenant_id}"))
    rows = []
    for view in result.rows:
        s = view.session
        rows.append([
            _username(ctx, view),
            link(url(base, tenant=s.tenant_id), s.tenant_id),
            Html(f"<span class=mono>{link(f'{base}/{s.sid}', s.sid)}</span>"),
            _device(s.user_agent) if view.acting_admin is None else Html(
                f"<b>impersonated by {esc(view.acting_admin.username)}</b>"),
            esc(", ".join(view.clients)) if view.clients else Html("<span class=muted>—</span>"),
            when(s.created_at), when(view.last_refresh), esc(s.acr),
            _status(s.revoked_at, s.revoke_reason),
            _revoke_button(ctx, "session", s.sid, "Revoke") if s.active else Html(""),
        ])
    pager = []
    page_params = {"username": criteria.username, "tenant": criteria.tenant_id,
                   "user_id": criteria.user_id, "all": 1 if criteria.include_revoked else None}
    if criteria.page > 0:
        pager.append(link(url(base, **page_params, page=criteria.page - 1), "← Newer"))
    if result.has_more:
        pager.append(link(url(base, **page_params, page=criteria.page + 1), "Older →"))
    return _page(ctx, title, (
        f"<h1>{esc(title)}</h1>{_notice(notice)}{get_form(base, controls)}"
        f"<p>{' '.join(actions)}</p>"
        + table(["User", "Tenant", "Session", "Device", "Clients", "Created", "Last refresh",
                 "ACR", "Status", ""], rows, empty="No sessions match.")
        + f"<p class=pager>{' '.join(pager)}</p>"))


def session_view(ctx: Ctx, view: SessionView, notice: str | None,
                 completion: str | None = None) -> bytes:
    s = view.session
    name = view.user.username if view.user else s.user_id
    facts = [("Session", Html(f"<span class=mono>{esc(s.sid)}</span>")),
             ("User", _username(ctx, view)), ("Tenant", esc(s.tenant_id)),
             ("Roles", Html(f"<span id=user_roles>{esc(', '.join(sorted(view.roles)))}"
                            "</span>") if view.roles else Html("<span class=muted>—</span>")),
             ("Status", _status(s.revoked_at, s.revoke_reason)),
             ("Session version (sv)", esc(s.sv)), ("ACR", esc(s.acr)),
             ("AMR", esc(" ".join(s.amr))), ("Authenticated", when(s.auth_time)),
             ("Created", when(s.created_at)), ("Last seen", when(s.last_seen_at)),
             ("Last refresh", when(view.last_refresh)), ("Device", _device(s.user_agent))]
    if completion is not None:  # beside the status
        facts.insert(5, ("Logout completion", esc(completion)))
    if s.actor_sid is not None:
        admin = view.acting_admin
        facts.insert(3, ("Impersonated by", Html(
            f"<span id=acting_admin>{esc(admin.username if admin else '?')}</span> "
            f"<span class=muted>({esc(admin.user_id if admin else '')}, session "
            f"{link(f'{ctx.base}/sessions/{s.actor_sid}', s.actor_sid)})</span>")))
    actions = [link(url(ctx.base + "/journey", needle=s.sid), "Journey of this session"),
               link(url(ctx.base + "/audit", subject=s.user_id), "Audit events of the user")]
    if s.active:
        actions.insert(0, _revoke_button(ctx, "session", s.sid, "Revoke this session"))
    actions.insert(1, _revoke_button(ctx, "user", s.user_id,
                                     f"Revoke every session of {name}"))
    rows = []
    for f in view.families:
        fam = f.family
        rows.append([
            Html(f"<span class=mono>{esc(fam.family_id)}</span>"),
            Html(f"{esc(f.client_name)}<br><span class='mono muted'>{esc(fam.client_id)}"
                 "</span>"),
            esc(" ".join(sorted(fam.scope))), esc(" ".join(fam.audience)),
            when(fam.created_at), when(f.last_refresh), when(fam.expires_at),
            _status(fam.revoked_at, fam.revoke_reason),
            _revoke_button(ctx, "family", fam.family_id, "Revoke family")
            if fam.revoked_at is None and s.active else Html(""),
        ])
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in facts)
    return _page(ctx, "Session", (
        f"<h1>Session of {esc(name)}</h1>{_notice(notice)}<dl>{dl}</dl>"
        f"<p>{' '.join(actions)}</p><h2>Refresh families</h2>"
        + table(["Family", "Client", "Scope", "Audience", "Created", "Last refresh",
                 "Expires", "Status", ""], rows,
                empty="No refresh families: no client holds a refresh token of it.")))


def confirm_view(ctx: Ctx, *, kind: str, target: str, what: str, effect: str,
                 back: str) -> bytes:
    form = button_form(ctx.base + "/revoke", {"kind": kind, "target": target,
                                              "confirm": "yes"},
                       csrf=ctx.csrf, label="Yes, revoke", danger=True, name="confirm-revoke")
    return _page(ctx, "Confirm revocation", (
        f"<div class=box><h1>Revoke {esc(what)}?</h1><p>{esc(effect)}</p>"
        f"<p>It cannot be undone.</p><p>{form} {link(back, 'Cancel')}</p></div>"))


# -- audit -----------------------------------------------------------------------------

def _details(fields: Mapping[str, Any]) -> Html:
    parts = []
    for key, value in fields.items():
        if key in _SHOWN_IN_COLUMNS:
            continue
        shown = " ".join(map(str, value)) if isinstance(value, list) else value
        parts.append(f"<b>{esc(key)}</b>={esc(shown)}")
    return Html(f"<span class=mono>{' '.join(parts)}</span>")


def _journey_link(ctx: Ctx, fields: Mapping[str, Any]) -> Html:
    for key in _JOURNEY_KEYS:
        if isinstance(fields.get(key), str):
            return link(url(ctx.base + "/journey", needle=fields[key]), "journey")
    return Html("")


def audit_view(ctx: Ctx, form: Mapping[str, str], events: Sequence[str],
               rows: Sequence[StoredAudit], older: int | None, error: str | None) -> bytes:
    base = ctx.base + "/audit"
    options = "".join(
        f"<option value='{esc(e)}'{' selected' if form.get('event') == e else ''}>"
        f"{esc(e or 'any')}</option>" for e in ("", *events))
    controls = [Html(f"<label>Event<select name=event>{options}</select></label>"),
                _text_input("subject", "Subject", form.get("subject")),
                _text_input("tenant", "Tenant", form.get("tenant")),
                _text_input("client", "Client", form.get("client")),
                _text_input("since", "From (UTC)", form.get("since"), kind="datetime-local"),
                _text_input("until", "To (UTC)", form.get("until"), kind="datetime-local")]
    table_rows = [[esc(r.id), when(r.record.at), esc(r.record.event),
                   esc(r.record.fields.get("subject")), esc(r.record.fields.get("tenant")),
                   esc(r.record.fields.get("client")), _details(r.record.fields),
                   _journey_link(ctx, r.record.fields)] for r in rows]
    pager = link(url(base, **form, before=older), "Older →") if older is not None else ""
    err = f"<p class=error role=alert>{esc(error)}</p>" if error else ""
    return _page(ctx, "Audit", (
        f"<h1>Audit timeline</h1>{err}{get_form(base, controls)}"
        + table(["#", "Time (UTC)", "Event", "Subject", "Tenant", "Client", "Details", ""],
                table_rows, empty="No audit events match.")
        + f"<p class=pager>{pager}</p>"))


# -- journey ---------------------------------------------------------------------------

def journey_view(ctx: Ctx, needle: str | None, journey: Journey | None) -> bytes:
    base = ctx.base + "/journey"
    form = get_form(base, [Html(
        "<label>Correlation id, token hash, jti, sid or family id"
        f"<input type=text name=needle size=60 value='{esc(needle)}'></label>")],
        label="Trace")
    body = f"<h1>Journey</h1>{form}"
    if journey is not None:
        rows = [[when(s.at), esc(s.service), esc(s.event),
                 Html(f"<span class='{_DECISION_CLASS.get(s.decision, 'muted')}'>"
                      f"{esc(s.decision)}</span>"),
                 esc(s.fields.get("reason")), esc(s.rule), esc(s.fields.get("subject")),
                 esc(s.fields.get("client")),
                 Html(f"<span class=mono>{esc(s.fields.get('jti'))}</span>"),
                 Html(f"<span class=mono>{esc(s.fields.get('correlation_id'))}</span>"),
                 esc(s.source)] for s in journey.steps]
        notes = "".join(f"<p class=muted>{esc(n)}</p>" for n in journey.notes)
        body += (f"<h2>{len(journey.steps)} events naming "
                 f"<span class=mono>{esc(journey.needle)}</span></h2>{notes}"
                 + table(["Time (UTC)", "Service", "Event", "Decision", "Reason", "Rule",
                          "Subject", "Client", "jti", "Correlation id", "Source"], rows,
                         empty="No event names it."))
    return _page(ctx, "Journey", body)


# -- sign-in and errors ----------------------------------------------------------------

def login_view(base: str, *, csrf: str, next_path: str, message: str | None,
               error: str | None, username: str = "", tenant: str = "") -> bytes:
    msg = f"<p class=muted>{esc(message)}</p>" if message else ""
    err = f"<p class=error role=alert>{esc(error)}</p>" if error else ""
    return page("Sign in", Html(
        f"<div class=box><h1>Tessera console</h1>{msg}{err}"
        f"<form method=post action='{esc(base)}/login'>{hidden('csrf_token', csrf)}"
        f"{hidden('next', next_path)}<label for=tenant>Tenant</label>"
        f"<input id=tenant name=tenant type=text value='{esc(tenant)}'>"
        "<label for=username>Username</label>"
        "<input id=username name=username type=text autocomplete=username required "
        f"value='{esc(username)}'><label for=password>Password</label>"
        "<input id=password name=password type=password autocomplete=current-password "
        "required><label for=totp_code>One-time code <span class=muted>(if you use "
        "two-step verification)</span></label><input id=totp_code name=totp_code type=text "
        "inputmode=numeric autocomplete=one-time-code maxlength=8>"
        "<p><button type=submit>Sign in</button></p></form></div>"))


def forbidden_view(base: str) -> bytes:
    return page("Not allowed", Html(
        "<div class=box><h1>Not allowed</h1><p>The signed-in account is not a console "
        "administrator (it holds none of the roles platform-admin, tenant-admin, "
        f"support).</p><p>{link(base + '/login', 'Sign in as an administrator')}</p>"
        "</div>"))


def error_view(ctx: Ctx | None, message: str) -> bytes:
    body = f"<h1>Something is wrong</h1><p class=error>{esc(message)}</p>"
    return _page(ctx, "Error", body) if ctx else page("Error", Html(body))


# -- outbound signals and risk (issue 12) ----------------------------------------------


def _logout_uri_form(ctx: Ctx) -> str:
    """Register (or, left empty, remove) a client's back-channel logout URI."""
    return (f"<h2>Back-channel logout of a client</h2>"
            f"<form method=post action='{esc(ctx.base + '/signals/logout-uri')}'>"
            f"{_text_input('client_id', 'Client id', '')}"
            f"{_text_input('uri', 'Back-channel logout URI (https; empty removes it)', '')}"
            "<label><input type=checkbox name=session_required value=yes> session "
            "required (sid)</label>"
            f"{hidden('csrf_token', ctx.csrf)}<button type=submit>Save</button></form>")


def signals_view(ctx: Ctx, detections: Sequence[StoredAudit],
                 deliveries: Sequence[Delivery], notice: str | None = None) -> bytes:
    """Recent risk detections and back-channel logout / SSF deliveries (docs/signals.md)."""
    risk_rows = [[when(r.record.at), esc(r.record.fields.get("detection")),
                  esc(r.record.fields.get("action")), esc(r.record.fields.get("subject")),
                  esc(r.record.fields.get("tenant")), esc(r.record.fields.get("address")),
                  _journey_link(ctx, r.record.fields)] for r in detections]
    delivery_rows = [[when(d.created_at), esc(d.channel), esc(d.target), esc(d.event),
                      esc(d.status), esc(d.attempts), when(d.delivered_at),
                      esc(d.last_error or "")] for d in deliveries]
    return _page(ctx, "Signals", (
        _notice(notice) + "<h1>Risk signals</h1>"
        + table(["Time (UTC)", "Detection", "Action", "Subject", "Tenant", "Address", ""],
                risk_rows, empty="No risk detections.")
        + "<h1>Logout and SSF deliveries</h1>"
        + table(["Created (UTC)", "Channel", "Receiver", "Event", "Status", "Attempts",
                 "Delivered (UTC)", "Last error"], delivery_rows, empty="No deliveries.")
        + "<p>Dead letters are requeued with <code>tessera signals retry ID</code>.</p>"
        + (_logout_uri_form(ctx) if ctx.admin.may_act else "")))
