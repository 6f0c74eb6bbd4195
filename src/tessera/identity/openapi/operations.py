"""Operator and verifier-facing routes: the admin API, the revocation feed (snapshot and
SSE stream, DESIGN §3), health, Prometheus metrics and this document."""

from __future__ import annotations

from tessera.identity.openapi.components import (
    Json,
    bearer,
    form,
    oauth_errors,
    ok_json,
    operation,
    query,
    ref,
    string,
)
from tessera.identity.openapi.context import DocumentContext

__all__ = ["OPENAPI_PATH", "paths"]

OPENAPI_PATH = "/openapi.json"
_FEED_AUTH: list[Json] = [{"clientBasic": []}]
_SSE_EVENT: Json = {
    "type": "object", "description": "One server-sent event (its fields as parsed).",
    "required": ["event", "data"],
    "properties": {"event": {"enum": ["revocation", "heartbeat", "resync"]},
                   "id": {"type": "string", "pattern": "^[0-9]+$"},
                   "data": {"type": "string", "description": "JSON: a RevocationEvent, "
                            "`{\"seq\": N, \"watermark\": Watermark|null}` for a "
                            "heartbeat, `{}` for resync"}}}
_CURSOR: Json = {"type": "string", "pattern": "^[0-9]{1,18}$"}


def _admin_sessions() -> Json:
    return {"post": operation(
        "Bump the version of, or revoke, a session or all of a user's sessions",
        tags=("admin",), security=bearer,
        description="Bearer token with scope `tessera:admin` and this issuer as audience. "
                    "Name exactly one of `sid` and `user_id`.",
        body=form({"action": string(enum=["bump_version", "revoke"]),
                   "sid": string(), "user_id": string(), "reason": string()},
                  required=("action",)),
        responses={**ok_json("Sessions changed", {
            "type": "object", "required": ["sessions"],
            "properties": {"sessions": {"type": "integer", "minimum": 0}}}, no_store=True),
                   **oauth_errors(400, 401, 403, 503)})}


def _snapshot() -> Json:
    return {"get": operation(
        "Revocation snapshot for verifiers", tags=("feed",), security=_FEED_AUTH,
        description="Client authentication (HTTP Basic) by a client with `tessera:events`. "
                    "With `Accept: application/vnd.tessera.revocation-snapshot.columns+json` "
                    "the same events come as parallel arrays (`format: columns/1`, "
                    "documented in `tessera.core.revocation_snapshot`), what the verifier "
                    "SDK asks for; otherwise as below.",
        responses={**ok_json("Live revocations and the sequence they are current to",
                             ref("RevocationSnapshot"), no_store=True),
                   **oauth_errors(400, 401, 403, 429, 503)})}


def _range() -> Json:
    return {"get": operation(
        "Revocation events after a cursor, paged (a verifier filling a gap)",
        tags=("feed",), security=_FEED_AUTH,
        description="Client authentication (HTTP Basic) by a client with `tessera:events`. "
                    "Events with `seq > after` up to the watermark's head; follow `next` "
                    "until it is null.",
        parameters=[query("after", "The cursor: events after this sequence number",
                          required=True, schema=_CURSOR),
                    query("limit", "Page size, 1 to 1000 (default 1000)", schema=_CURSOR)],
        responses={**ok_json("One page, with a watermark of the store",
                             ref("RevocationPage"), no_store=True),
                   **oauth_errors(400, 401, 403, 429, 503)})}


def _acks() -> Json:
    return {"post": operation(
        "Report the sequence a verifier has applied (logout completion)",
        tags=("feed",), security=_FEED_AUTH,
        description="Client authentication (HTTP Basic) by a client with `tessera:events`. "
                    "A cursor past the outbox head counts as the head. See "
                    "docs/freshness.md#logout-completion.",
        body={"required": True, "content": {"application/json": {
            "schema": ref("AppliedReport")}}},
        responses={"204": {"description": "Recorded", "headers": {
            "Cache-Control": {"schema": {"type": "string"}}}},
                   **oauth_errors(400, 401, 403, 429, 503)})}


def _events() -> Json:
    return {"get": operation(
        "Revocation events (server-sent events)", tags=("feed",), security=_FEED_AUTH,
        description="`event: revocation` frames with `id: <seq>`, `event: heartbeat`, and "
                    "`event: resync` when the cursor fell out of the window; heartbeats carry "
                    "the relay's watermark. Resume with "
                    "`Last-Event-ID` or `?after=`.",
        parameters=[query("after", "Resume after this sequence number",
                          schema={"type": "string", "pattern": "^[0-9]{1,18}$"}),
                    {"name": "Last-Event-ID", "in": "header", "required": False,
                     "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}}],
        responses={"200": {"description": "An endless event stream",
                           "content": {"text/event-stream": {"schema": _SSE_EVENT}}},
                   **oauth_errors(400, 401, 403, 429, 503)})}


def _metrics(ctx: DocumentContext) -> Json:
    security: list[Json] | None = [{"metricsToken": []}] if ctx.metrics_token else None
    errors = oauth_errors(401, 403) if ctx.metrics_token else oauth_errors(403)
    return {"get": operation(
        "Prometheus metrics (totals over every worker)", tags=("operations",),
        security=security,
        description="See docs/metrics.md: behind `metrics.token`, on a separate "
                    "`metrics.port`, or public only when `metrics.public` is set.",
        responses={"200": {"description": "Prometheus text format 0.0.4",
                           "content": {"text/plain": {"schema": {"type": "string"}}}},
                   **errors})}


def _readiness() -> Json:
    answer = {"type": "object", "required": ["status"],
              "properties": {"status": {"enum": ["ready", "unavailable"]},
                             "checks": {"type": "object", "additionalProperties": {
                                 "enum": ["ok", "unreachable", "timeout"]}}}}
    return {"get": operation(
        "Readiness: the database answers (take the instance out of rotation if not)",
        tags=("operations",),
        responses={"200": {"description": "Ready",
                           "content": {"application/json": {"schema": answer}}},
                   "503": {"description": "Not ready",
                           "content": {"application/json": {"schema": answer}}}})}


def paths(ctx: DocumentContext) -> dict[str, Json]:
    found: dict[str, Json] = {
        "/admin/sessions": _admin_sessions(),
        "/revocations": _range(),
        "/revocations/snapshot": _snapshot(),
        "/revocations/events": _events(),
        "/revocations/acks": _acks(),
        "/healthz": {"get": operation("Liveness", tags=("operations",), responses=ok_json(
            "The process serves requests", {"type": "object", "required": ["status"],
                                            "properties": {"status": {"const": "ok"}}}))},
        "/readyz": _readiness(),
        OPENAPI_PATH: {"get": operation("This document (OpenAPI 3.1)", tags=("operations",),
                                        responses=ok_json("The document", {"type": "object"}))},
    }
    if ctx.metrics:
        found["/metrics"] = _metrics(ctx)
    return found
