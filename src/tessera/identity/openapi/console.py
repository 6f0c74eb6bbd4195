"""The admin web console (docs/console.md), mounted at ``/console`` when enabled. Every
page but the login form needs an administrator's browser session; POSTs carry a CSRF
token. Pages are HTML; refusals redirect to the login form or answer 403."""

from __future__ import annotations

from tessera.identity.openapi.components import (
    Json,
    form,
    html_page,
    operation,
    query,
    redirect,
    string,
)
from tessera.identity.openapi.context import DocumentContext

__all__ = ["paths"]

_TAG = ("console",)
_STATUSES = (200, 400, 403, 404, 429, 503)


def _page(summary: str, *, parameters: list[Json] | None = None) -> Json:
    return operation(summary, tags=_TAG, parameters=parameters,
                     responses={**html_page(summary, *_STATUSES),
                                **redirect("To the console's login form (not signed in, "
                                           "or step-up needed)")})


def _post(summary: str, fields: dict[str, Json]) -> Json:
    return operation(summary, tags=_TAG, body=form({**fields, "csrf_token": string()}),
                     responses={**html_page(summary, *_STATUSES),
                                **redirect("Back to a console page")})


def paths(ctx: DocumentContext) -> dict[str, Json]:
    if not ctx.console:
        return {}
    audit = [query(name, f"Filter: {name}") for name in
             ("event", "user_id", "tenant", "client_id", "since", "until", "before")]
    return {
        "/console/": {"get": _page("Console home")},
        "/console/login": {
            "get": _page("Console login form", parameters=[
                query("next", "Console page to return to"), query("why", "Why sign-in")]),
            "post": _post("Console sign-in", {
                "tenant": string(), "username": string(), "password": string(),
                "totp_code": string(),
                "next": string()})},
        "/console/logout": {"post": _post("Console sign-out", {})},
        "/console/sessions": {"get": _page("Sessions", parameters=[
            query("q", "Search"), query("before", "Page cursor")])},
        "/console/sessions/{sid}": {"get": _page("One session", parameters=[
            {"name": "sid", "in": "path", "required": True,
             "schema": {"type": "string"}}])},
        "/console/revoke": {"post": _post("Revoke (session, user, family or tenant)", {
            "kind": string(), "target": string(), "confirm": string(), "reason": string()})},
        "/console/audit": {"get": _page("Audit timeline", parameters=audit)},
        "/console/signals": {"get": _page("Risk signals and logout/SSF deliveries")},
        "/console/signals/logout-uri": {"post": _post(
            "Set or remove a client's back-channel logout URI", {
                "client_id": string(), "uri": string(), "session_required": string()})},
        "/console/journey": {"get": _page("Journey of a request or session", parameters=[
            query("needle", "Correlation id, sid, token hash ...")])},
    }
