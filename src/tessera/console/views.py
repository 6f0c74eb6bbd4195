"""The console's pages, as functions of what they show: each picks its Jinja2 template
(``console/templates``, autoescaped) and hands it the values; every state-changing form
carries the CSRF token (``ui.button_form``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tessera.console.gate import Admin
from tessera.console.html import render, url
from tessera.console.journey import Journey
from tessera.console.queries import SessionFilter, SessionPage, SessionView
from tessera.core.signals import Delivery
from tessera.store.ports import LEGACY_AUDIT_FIELDS, StoredAudit

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

_SHOWN_IN_COLUMNS = frozenset({*LEGACY_AUDIT_FIELDS, *LEGACY_AUDIT_FIELDS.values()})
_JOURNEY_KEYS = ("correlation_id", "jti", "token_hash", "sid", "family_id")
_DECISION_CLASS = {"allowed": "allowed", "denied": "denied"}


@dataclass(frozen=True, slots=True)
class Ctx:
    """What every signed-in page needs: the console's base path, who is signed in and the
    CSRF token for this browser."""

    base: str
    admin: Admin
    csrf: str


# -- sessions --------------------------------------------------------------------------

def sessions_view(ctx: Ctx, criteria: SessionFilter, result: SessionPage,
                  notice: str | None) -> bytes:
    base = ctx.base + "/sessions"
    title = f"Sessions of {result.user.username}" if result.user else "Sessions"
    page_params = {"username": criteria.username, "tenant": criteria.tenant_id,
                   "user_id": criteria.user_id, "all": 1 if criteria.include_revoked else None}
    pager = []
    if criteria.page > 0:
        pager.append((url(base, **page_params, page=criteria.page - 1), "← Newer"))
    if result.has_more:
        pager.append((url(base, **page_params, page=criteria.page + 1), "Older →"))
    return render("sessions.html", ctx=ctx, title=title, base=base, criteria=criteria,
                  result=result, notice=notice, pager=pager)


def session_view(ctx: Ctx, view: SessionView, notice: str | None,
                 completion: str | None = None) -> bytes:
    name = view.user.username if view.user else view.session.user_id
    return render("session.html", ctx=ctx, title="Session", view=view, name=name,
                  notice=notice, completion=completion)


def confirm_view(ctx: Ctx, *, kind: str, target: str, what: str, effect: str,
                 back: str) -> bytes:
    return render("confirm.html", ctx=ctx, title="Confirm revocation", kind=kind,
                  target=target, what=what, effect=effect, back=back)


# -- audit -----------------------------------------------------------------------------

def _journey_needle(fields: Mapping[str, Any]) -> str | None:
    """The first identifier of the event the journey page can trace."""
    for key in _JOURNEY_KEYS:
        if isinstance(fields.get(key), str):
            return str(fields[key])
    return None


def audit_view(ctx: Ctx, form: Mapping[str, str], events: Sequence[str],
               rows: Sequence[StoredAudit], older: int | None, error: str | None) -> bytes:
    base = ctx.base + "/audit"
    pager = [(url(base, **form, before=older), "Older →")] if older is not None else []
    return render("audit.html", ctx=ctx, title="Audit", base=base, form=form,
                  events=events, rows=rows, pager=pager, error=error,
                  shown_in_columns=_SHOWN_IN_COLUMNS, journey_needle=_journey_needle)


# -- journey ---------------------------------------------------------------------------

def journey_view(ctx: Ctx, needle: str | None, journey: Journey | None) -> bytes:
    return render("journey.html", ctx=ctx, title="Journey", base=ctx.base + "/journey",
                  needle=needle, journey=journey, decision_class=_DECISION_CLASS)


# -- sign-in and errors ----------------------------------------------------------------

def login_view(base: str, *, csrf: str, next_path: str, message: str | None,
               error: str | None, username: str = "", tenant: str = "") -> bytes:
    return render("login.html", title="Sign in", base=base, csrf=csrf, next_path=next_path,
                  message=message, error=error, username=username, tenant=tenant)


def forbidden_view(base: str) -> bytes:
    return render("forbidden.html", title="Not allowed", base=base)


def error_view(ctx: Ctx | None, message: str) -> bytes:
    return render("error.html", ctx=ctx, title="Error", message=message)


# -- outbound signals and risk (issue 12) ----------------------------------------------

def signals_view(ctx: Ctx, detections: Sequence[StoredAudit],
                 deliveries: Sequence[Delivery], notice: str | None = None) -> bytes:
    """Recent risk detections and back-channel logout / SSF deliveries (docs/signals.md),
    and the form that sets a client's back-channel logout URI."""
    return render("signals.html", ctx=ctx, title="Signals", detections=detections,
                  deliveries=deliveries, notice=notice, journey_needle=_journey_needle)
