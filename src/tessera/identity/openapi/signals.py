"""Outbound signals (docs/signals.md): the SSF transmitter (configuration, stream
management, poll delivery) and global token revocation."""

from __future__ import annotations

from tessera.identity.openapi.components import (
    Json,
    bearer,
    oauth_errors,
    ok_json,
    operation,
    query,
)
from tessera.identity.openapi.context import DocumentContext

__all__ = ["paths"]

_NO_STORE: Json = {"Cache-Control": {"schema": {"type": "string"}}}
_STREAM: Json = {
    "type": "object", "description": "SSF 1.0 §8.1.1 stream configuration",
    "required": ["stream_id", "iss", "aud", "delivery", "events_supported",
                 "events_requested", "events_delivered"],
    "properties": {
        "stream_id": {"type": "string"}, "iss": {"type": "string"}, "aud": {"type": "string"},
        "delivery": {"type": "object", "required": ["method"],
                     "properties": {"method": {"type": "string"},
                                    "endpoint_url": {"type": ["string", "null"]}}},
        "events_supported": {"type": "array", "items": {"type": "string"}},
        "events_requested": {"type": "array", "items": {"type": "string"}},
        "events_delivered": {"type": "array", "items": {"type": "string"}},
        "description": {"type": "string"},
        "min_verification_interval": {"type": "integer"},
        "default_subjects": {"enum": ["ALL", "NONE"]}}}
_CONFIG_IN: Json = {
    "type": "object",
    "properties": {
        "stream_id": {"type": "string"},
        "delivery": {"type": "object", "properties": {
            "method": {"enum": ["urn:ietf:rfc:8935", "urn:ietf:rfc:8936"]},
            "endpoint_url": {"type": "string"},
            "authorization_header": {"type": "string"}}},
        "events_requested": {"type": "array", "items": {"type": "string"}},
        "description": {"type": "string"},
        "default_subjects": {"enum": ["ALL", "NONE"]}}}
_STATUS: Json = {"type": "object", "required": ["stream_id", "status"],
                 "properties": {"stream_id": {"type": "string"},
                                "status": {"enum": ["enabled", "paused", "disabled"]},
                                "reason": {"type": "string"}}}
_SUBJECT_IN: Json = {"type": "object", "required": ["stream_id", "subject"],
                     "properties": {"stream_id": {"type": "string"},
                                    "subject": {"type": "object"},
                                    "verified": {"type": "boolean"}}}


def _json_body(schema: Json) -> Json:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _errors(*extra: int) -> dict[str, Json]:
    errors = oauth_errors(400, 401, 403, 404, 503)
    if 409 in extra:
        errors["409"] = {"description": "Too many streams for this client",
                         "headers": dict(_NO_STORE),
                         "content": {"application/json": {"schema": {"type": "object"}}}}
    return errors


def _empty(status: int, description: str) -> dict[str, Json]:
    return {str(status): {"description": description, "headers": dict(_NO_STORE)}}


_AUTH = ("Bearer access token of this issuer with scope `tessera:ssf`, issued to the "
         "receiver's own client (client credentials). A stream belongs to that client; "
         "another client's stream answers 404.")
_STREAM_ID = query("stream_id", "The stream", required=True)


def _streams() -> Json:
    tags = ("ssf",)
    return {
        "get": operation("Read one stream (`stream_id`) or every stream of the caller",
                         tags=tags, security=bearer, description=_AUTH,
                         parameters=[query("stream_id", "The stream (all when absent)")],
                         responses={**ok_json("The stream, or a list of streams", {
                             "oneOf": [_STREAM, {"type": "array", "items": _STREAM}]},
                             no_store=True), **_errors()}),
        "post": operation("Create a stream", tags=tags, security=bearer, description=_AUTH,
                          body=_json_body(_CONFIG_IN),
                          responses={**ok_json("Created", _STREAM, status=201, no_store=True),
                                     **_errors(409)}),
        "patch": operation("Update a stream (given properties only)", tags=tags,
                           security=bearer, description=_AUTH, body=_json_body(_CONFIG_IN),
                           responses={**ok_json("Updated", _STREAM, no_store=True),
                                      **_errors()}),
        "put": operation("Replace a stream's configuration", tags=tags, security=bearer,
                         description=_AUTH, body=_json_body(_CONFIG_IN),
                         responses={**ok_json("Replaced", _STREAM, no_store=True),
                                    **_errors()}),
        "delete": operation("Delete a stream (undelivered events go with it)", tags=tags,
                            security=bearer, description=_AUTH, parameters=[_STREAM_ID],
                            responses={**_empty(204, "Deleted"), **_errors()}),
    }


def _status() -> Json:
    return {
        "get": operation("A stream's status", tags=("ssf",), security=bearer,
                         description=_AUTH, parameters=[_STREAM_ID],
                         responses={**ok_json("Status", _STATUS, no_store=True),
                                    **_errors()}),
        "post": operation("Enable, pause (events are held) or disable a stream",
                          tags=("ssf",), security=bearer, description=_AUTH,
                          body=_json_body(_STATUS),
                          responses={**ok_json("Status", _STATUS, no_store=True),
                                     **_errors()}),
    }


def _subjects(verb: str, status: int) -> Json:
    return {"post": operation(f"{verb} a subject (iss_sub, opaque or email)", tags=("ssf",),
                              security=bearer, description=_AUTH,
                              body=_json_body(_SUBJECT_IN),
                              responses={**_empty(status, "Done"), **_errors()})}


def _verify() -> Json:
    body = {"type": "object", "required": ["stream_id"],
            "properties": {"stream_id": {"type": "string"}, "state": {"type": "string"}}}
    return {"post": operation("Request a verification event on the stream", tags=("ssf",),
                              security=bearer, description=_AUTH, body=_json_body(body),
                              responses={**_empty(204, "Queued"), **_errors()})}


def _poll() -> Json:
    body = {"type": "object", "properties": {
        "maxEvents": {"type": "integer", "minimum": 0, "maximum": 100},
        "returnImmediately": {"type": "boolean"},
        "ack": {"type": "array", "items": {"type": "string"}},
        "setErrs": {"type": "object"}}}
    answer = {"type": "object", "required": ["sets", "moreAvailable"],
              "properties": {"sets": {"type": "object",
                                      "additionalProperties": {"type": "string"}},
                             "moreAvailable": {"type": "boolean"}}}
    return {"post": operation(
        "Poll a stream's SETs (RFC 8936)", tags=("ssf",), security=bearer,
        description=_AUTH + " Acknowledge (`ack`) or reject (`setErrs`) what the last poll "
                            "returned; without `returnImmediately` the call waits up to 10 s.",
        parameters=[{"name": "stream_id", "in": "path", "required": True,
                     "schema": {"type": "string"}}],
        body={"required": False, "content": {"application/json": {"schema": body}}},
        responses={**ok_json("SETs by jti", answer, no_store=True), **_errors()})}


def _global_revocation() -> Json:
    body = {"type": "object", "required": ["sub_id"], "properties": {"sub_id": {
        "type": "object", "description": "`{format: iss_sub, iss, sub}` or "
                                         "`{format: opaque, id}`"}}}
    return {"post": operation(
        "Global token revocation: end every session, family and token of a user",
        tags=("admin",), security=bearer,
        description="draft-parecki-oauth-global-token-revocation. Bearer token with "
                    "`tessera:admin` whose holder administers the user's tenant; a user "
                    "outside it answers 404 like an unknown one.",
        body=_json_body(body),
        responses={**_empty(204, "Every session of the user ended"),
                   **oauth_errors(400, 401, 403, 404, 503)})}


def paths(ctx: DocumentContext) -> dict[str, Json]:
    if not ctx.signals:
        return {}
    config = {"type": "object", "required": ["issuer", "delivery_methods_supported"]}
    return {
        "/.well-known/ssf-configuration": {"get": operation(
            "SSF transmitter configuration (SSF 1.0 §7.1)", tags=("ssf",),
            responses=ok_json("Transmitter metadata", config))},
        "/ssf/streams": _streams(),
        "/ssf/status": _status(),
        "/ssf/subjects/add": _subjects("Add", 200),
        "/ssf/subjects/remove": _subjects("Remove", 204),
        "/ssf/verify": _verify(),
        "/ssf/poll/{stream_id}": _poll(),
        "/global-token-revocation": _global_revocation(),
    }
