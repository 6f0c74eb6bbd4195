"""The SSF transmitter's HTTP API (OpenID Shared Signals Framework 1.0 §7).

- ``GET /.well-known/ssf-configuration``: transmitter metadata (§7.1).
- ``/ssf/streams``: create (POST), read (GET, ``?stream_id=`` or all of the caller's),
  update (PATCH) / replace (PUT), delete (DELETE ``?stream_id=``) (§8.1.1).
- ``/ssf/status`` GET/POST, ``/ssf/subjects/add``, ``/ssf/subjects/remove``,
  ``/ssf/verify`` (§8.1.2–8.1.4).
- ``POST /ssf/poll/{stream_id}``: poll delivery (RFC 8936), for poll streams.

Who may call: a bearer access token of this issuer, active now, with scope
``tessera:ssf``, issued to a client (its own token, client credentials) that is enabled
and still registered with ``tessera:ssf`` — re-read at every call. A stream belongs to
that client and its tenant: another client's stream is answered exactly like an unknown
one (404). Bad input: 400 ``invalid_request`` naming the problem (unknown event types,
malformed delivery, receiver URL refused); no or inactive token 401; scope missing 403.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tessera.application.standing import client_tenant
from tessera.core.secrets import new_id
from tessera.core.signals import (
    DELIVERY_POLL,
    DELIVERY_PUSH,
    SSF_EVENTS_SUPPORTED,
    SSF_VERIFICATION,
    ReceiverRefused,
    Stream,
    address_refused,
    check_receiver,
    subject_key,
)
from tessera.core.worker import wait_event
from tessera.identity.http import _read_body, read_request, send_error
from tessera.identity.signals.delivery import AUTHORIZATION_CONTEXT
from tessera.identity.signals.wiring import Signals
from tessera.observability import events
from tessera.protocol.errors import (
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    OAuthError,
    TemporarilyUnavailable,
)
from tessera.protocol.oidc.userinfo import bearer_token
from tessera.protocol.token_state import TokenInactive
from tessera.store.ports import StoreError

__all__ = ["SSF_SCOPE", "SsfApi", "ssf_configuration", "ssf_routes"]

SSF_SCOPE = "tessera:ssf"
MAX_STREAMS_PER_CLIENT = 20
_STATUSES = ("enabled", "paused", "disabled")
_WRITABLE = frozenset({"delivery", "events_requested", "description", "default_subjects"})
_READ_ONLY = frozenset({"stream_id", "iss", "aud", "events_supported", "events_delivered",
                        "min_verification_interval"})


class NotFound(OAuthError):
    error, status = "not_found", 404


class Conflict(OAuthError):
    error, status = "conflict", 409


class _Forbidden(InsufficientScope):
    pass


def ssf_configuration(issuer: str) -> dict[str, Any]:
    """Transmitter configuration metadata (SSF 1.0 §7.1)."""
    return {
        "spec_version": "1_0",
        "issuer": issuer,
        "jwks_uri": f"{issuer}/jwks",
        "delivery_methods_supported": [DELIVERY_PUSH, DELIVERY_POLL],
        "configuration_endpoint": f"{issuer}/ssf/streams",
        "status_endpoint": f"{issuer}/ssf/status",
        "add_subject_endpoint": f"{issuer}/ssf/subjects/add",
        "remove_subject_endpoint": f"{issuer}/ssf/subjects/remove",
        "verification_endpoint": f"{issuer}/ssf/verify",
        "critical_subject_members": [],
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}],
        "default_subjects": "ALL",
        "events_supported": list(SSF_EVENTS_SUPPORTED),
    }


def _json(body: Any, status: int = 200) -> Response:
    return JSONResponse(body, status, headers={"cache-control": "no-store"})


class SsfApi:
    def __init__(self, signals: Signals) -> None:
        self._s = signals
        self._id = signals.identity
        self._issuer = signals.identity.settings.issuer
        self._max_body = signals.identity.settings.security.max_body_bytes

    # -- who is calling ----------------------------------------------------------------

    async def _caller(self, request: Request) -> tuple[str, str, dict[str, Any] | None]:
        """(client_id, tenant_id, JSON body or None) of an authorised call."""
        oauth = await read_request(request, max_body=self._max_body)
        try:
            token = await self._id.token_state.check(bearer_token(oauth),
                                                     audience=self._issuer)
        except TokenInactive as exc:
            raise InvalidToken("the access token is not active", detail=exc.reason) from None
        if SSF_SCOPE not in token.scopes:
            raise _Forbidden(f"requires {SSF_SCOPE}")
        client_id = token.client_id
        client = await self._id.clients.get(client_id)
        if client is None or client.disabled or SSF_SCOPE not in client.scopes \
                or token.sid is not None or token.user_id != client_id:
            raise _Forbidden(f"requires a client token of a client registered with {SSF_SCOPE}")
        raw = oauth.body
        if request.method in ("PUT", "PATCH"):  # read_request reads POST bodies only
            raw = await _read_body(request, self._max_body)
        body: dict[str, Any] | None = None
        if raw:
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise InvalidRequest("the body is not JSON") from None
            if not isinstance(parsed, dict):
                raise InvalidRequest("the body must be a JSON object")
            body = parsed
        return client_id, client_tenant(client), body

    async def _own(self, client_id: str, stream_id: Any) -> Stream:
        if not isinstance(stream_id, str) or not stream_id or len(stream_id) > 64:
            raise InvalidRequest("stream_id is required")
        async with self._id.store.unit_of_work(read_only=True) as uow:
            stream = await uow.signals.get_stream(stream_id)
        if stream is None or stream.client_id != client_id:
            raise NotFound("no such stream")
        return stream

    async def _handle(self, request: Request, action: Any) -> Response:
        try:
            client_id, tenant_id, body = await self._caller(request)
            result: Response = await action(request, client_id, tenant_id, body)
            return result
        except InsufficientScope as exc:
            return JSONResponse(exc.body(), 403, headers={
                "www-authenticate": f'Bearer error="insufficient_scope", scope="{SSF_SCOPE}"',
                "cache-control": "no-store"})
        except OAuthError as exc:
            return send_error(exc)
        except StoreError:
            return send_error(TemporarilyUnavailable("try again shortly"))

    # -- configuration -----------------------------------------------------------------

    def describe(self, stream: Stream) -> dict[str, Any]:
        delivery: dict[str, Any] = {"method": stream.method}
        if stream.method == DELIVERY_POLL:
            delivery["endpoint_url"] = f"{self._issuer}/ssf/poll/{stream.stream_id}"
        else:
            delivery["endpoint_url"] = stream.endpoint_url
        out: dict[str, Any] = {
            "stream_id": stream.stream_id, "iss": self._issuer, "aud": stream.aud,
            "delivery": delivery, "events_supported": list(SSF_EVENTS_SUPPORTED),
            "events_requested": list(stream.events_requested),
            "events_delivered": list(stream.events_delivered),
            "min_verification_interval": 0, "default_subjects": stream.default_subjects}
        if stream.description is not None:
            out["description"] = stream.description
        return out

    def _apply(self, stream: Stream, body: dict[str, Any], *, partial: bool) -> Stream:
        """Validate a stream configuration and apply it; raises ``InvalidRequest``."""
        unknown = set(body) - _WRITABLE - _READ_ONLY
        if unknown:
            raise InvalidRequest(f"unknown stream property {sorted(unknown)[0][:40]!r}")
        if "aud" in body and body["aud"] != stream.aud:
            raise InvalidRequest("aud is set by the transmitter (the receiver's client id)")
        changes: dict[str, Any] = {}
        if "delivery" in body or not partial:
            changes.update(self._delivery(body.get("delivery")))
        if "events_requested" in body or not partial:
            requested = body.get("events_requested", [])
            if not isinstance(requested, list) or not all(isinstance(e, str)
                                                          for e in requested):
                raise InvalidRequest("events_requested must be a list of event type URIs")
            bad = [e for e in requested if e not in SSF_EVENTS_SUPPORTED]
            if bad:
                raise InvalidRequest(f"unsupported event type {bad[0][:120]!r}; "
                                     "see events_supported")
            changes["events_requested"] = tuple(dict.fromkeys(requested))
        if "description" in body or not partial:
            description = body.get("description")
            if description is not None and (not isinstance(description, str)
                                            or len(description) > 500):
                raise InvalidRequest("description must be a string of at most 500 characters")
            changes["description"] = description
        if "default_subjects" in body:
            if body["default_subjects"] not in ("ALL", "NONE"):
                raise InvalidRequest('default_subjects must be "ALL" or "NONE"')
            changes["default_subjects"] = body["default_subjects"]
        return replace(stream, **changes)

    def _delivery(self, delivery: Any) -> dict[str, Any]:
        if delivery is None:
            delivery = {"method": DELIVERY_POLL}
        if not isinstance(delivery, dict):
            raise InvalidRequest("delivery must be an object")
        method = delivery.get("method")
        extra = set(delivery) - {"method", "endpoint_url", "authorization_header"}
        if extra:
            raise InvalidRequest(f"unknown delivery property {sorted(extra)[0][:40]!r}")
        if method == DELIVERY_POLL:
            if delivery.get("endpoint_url") is not None or "authorization_header" in delivery:
                raise InvalidRequest("poll delivery: the transmitter provides endpoint_url")
            return {"method": method, "endpoint_url": None, "sealed_authorization": None}
        if method != DELIVERY_PUSH:
            raise InvalidRequest(f"delivery.method must be {DELIVERY_PUSH} or {DELIVERY_POLL}")
        url = delivery.get("endpoint_url")
        if not isinstance(url, str):
            raise InvalidRequest("push delivery needs endpoint_url")
        try:
            _, host, _ = check_receiver(url, issuer=self._issuer)
        except ReceiverRefused as exc:
            raise InvalidRequest(f"endpoint_url refused: {exc}") from None
        reason = address_refused(host, issuer=self._issuer,
                                 allowed=tuple(self._id.settings.signals.allowed_networks))
        if reason is not None and reason != "not an IP address":
            raise InvalidRequest(f"endpoint_url refused: {reason}")
        auth = delivery.get("authorization_header")
        sealed = None
        if auth is not None:
            if not isinstance(auth, str) or not auth or len(auth) > 4096 \
                    or any(c in auth for c in "\r\n"):
                raise InvalidRequest("authorization_header must be a header value")
            sealed = self._s.sealer.seal(auth.encode(), context=AUTHORIZATION_CONTEXT)
        return {"method": method, "endpoint_url": url, "sealed_authorization": sealed}

    # -- streams -----------------------------------------------------------------------

    async def streams(self, request: Request) -> Response:
        handlers = {"POST": self._create, "GET": self._read, "PATCH": self._update,
                    "PUT": self._update, "DELETE": self._delete}
        return await self._handle(request, handlers[request.method])

    async def _create(self, _: Request, client_id: str, tenant_id: str,
                      body: dict[str, Any] | None) -> Response:
        if body is None:
            raise InvalidRequest("a stream configuration (JSON object) is required")
        now = self._id.clock.now()
        draft = Stream(stream_id=new_id(), client_id=client_id,
                       tenant_id=tenant_id, aud=client_id, method=DELIVERY_POLL,
                       endpoint_url=None, events_requested=(), created_at=now,
                       updated_at=now)
        for key in ("stream_id", "events_delivered", "events_supported"):
            if key in body:
                raise InvalidRequest(f"{key} is set by the transmitter")
        stream = self._apply(draft, body, partial=False)
        async with self._s.transaction() as tx:
            if len(await tx.uow.signals.streams(client_id=client_id)) \
                    >= MAX_STREAMS_PER_CLIENT:
                raise Conflict("too many streams for this client")
            await tx.uow.signals.add_stream(stream)
            tx.audit(events.STREAM_CREATED, client_id=client_id, tenant_id=tenant_id,
                     stream=stream.stream_id, method=stream.method)
        return _json(self.describe(stream), 201)

    async def _read(self, request: Request, client_id: str, _t: str,
                    _b: dict[str, Any] | None) -> Response:
        stream_id = request.query_params.get("stream_id")
        if stream_id is not None:
            return _json(self.describe(await self._own(client_id, stream_id)))
        async with self._id.store.unit_of_work(read_only=True) as uow:
            streams = await uow.signals.streams(client_id=client_id)
        return _json([self.describe(s) for s in streams])

    async def _update(self, request: Request, client_id: str, tenant_id: str,
                      body: dict[str, Any] | None) -> Response:
        if body is None:
            raise InvalidRequest("a stream configuration (JSON object) is required")
        stream = await self._own(client_id, body.get("stream_id"))
        updated = replace(self._apply(stream, body, partial=request.method == "PATCH"),
                          updated_at=self._id.clock.now())
        async with self._s.transaction() as tx:
            if not await tx.uow.signals.replace_stream(updated):
                raise NotFound("no such stream")
            tx.audit(events.STREAM_UPDATED, client_id=client_id, tenant_id=tenant_id,
                     stream=stream.stream_id)
        return _json(self.describe(updated))

    async def _delete(self, request: Request, client_id: str, tenant_id: str,
                      _b: dict[str, Any] | None) -> Response:
        stream = await self._own(client_id, request.query_params.get("stream_id"))
        async with self._s.transaction() as tx:
            await tx.uow.signals.delete_stream(stream.stream_id)
            tx.audit(events.STREAM_DELETED, client_id=client_id, tenant_id=tenant_id,
                     stream=stream.stream_id)
        return Response(status_code=204, headers={"cache-control": "no-store"})

    # -- status, subjects, verification -------------------------------------------------

    async def status(self, request: Request) -> Response:
        async def act(req: Request, client_id: str, tenant_id: str,
                      body: dict[str, Any] | None) -> Response:
            if req.method == "GET":
                stream = await self._own(client_id, req.query_params.get("stream_id"))
            else:
                body = body or {}
                stream = await self._own(client_id, body.get("stream_id"))
                status, reason = body.get("status"), body.get("reason")
                if status not in _STATUSES:
                    raise InvalidRequest("status must be enabled, paused or disabled")
                if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
                    raise InvalidRequest("reason must be a string of at most 500 characters")
                stream = replace(stream, status=status, status_reason=reason,
                                 updated_at=self._id.clock.now())
                async with self._s.transaction() as tx:
                    await tx.uow.signals.replace_stream(stream)
                    tx.audit(events.STREAM_UPDATED, client_id=client_id, tenant_id=tenant_id,
                             stream=stream.stream_id, status=status)
            out = {"stream_id": stream.stream_id, "status": stream.status}
            if stream.status_reason:
                out["reason"] = stream.status_reason
            return _json(out)
        return await self._handle(request, act)

    def _subject(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        subject = body.get("subject")
        if not isinstance(subject, dict):
            raise InvalidRequest("subject (a subject identifier object) is required")
        try:
            key = subject_key(subject)
        except ValueError:
            raise InvalidRequest("subject format must be iss_sub, opaque or email") from None
        if len(key) > 600 or any(not isinstance(v, str) for v in subject.values()):
            raise InvalidRequest("malformed subject identifier")
        if subject.get("format") == "iss_sub" and subject.get("iss") != self._issuer:
            raise InvalidRequest("iss_sub subjects must name this issuer")
        return key, subject

    async def add_subject(self, request: Request) -> Response:
        async def act(_: Request, client_id: str, _t: str,
                      body: dict[str, Any] | None) -> Response:
            body = body or {}
            stream = await self._own(client_id, body.get("stream_id"))
            key, subject = self._subject(body)
            async with self._id.store.unit_of_work() as uow:
                await uow.signals.add_subject(stream.stream_id, key, subject)
            return Response(status_code=200, headers={"cache-control": "no-store"})
        return await self._handle(request, act)

    async def remove_subject(self, request: Request) -> Response:
        async def act(_: Request, client_id: str, _t: str,
                      body: dict[str, Any] | None) -> Response:
            body = body or {}
            stream = await self._own(client_id, body.get("stream_id"))
            key, _subject = self._subject(body)
            async with self._id.store.unit_of_work() as uow:
                await uow.signals.remove_subject(stream.stream_id, key)
            return Response(status_code=204, headers={"cache-control": "no-store"})
        return await self._handle(request, act)

    async def verify(self, request: Request) -> Response:
        async def act(_: Request, client_id: str, _t: str,
                      body: dict[str, Any] | None) -> Response:
            body = body or {}
            stream = await self._own(client_id, body.get("stream_id"))
            state = body.get("state")
            if state is not None and (not isinstance(state, str) or len(state) > 500):
                raise InvalidRequest("state must be a string of at most 500 characters")
            if stream.status != "enabled":
                raise InvalidRequest("the stream is not enabled")
            payload = {"state": state} if state is not None else {}
            delivery = self._s.fanout.stream_event(stream, SSF_VERIFICATION, payload)
            async with self._id.store.unit_of_work() as uow:
                await uow.signals.enqueue([delivery])
            self._s.delivered_or_queued()
            return Response(status_code=204, headers={"cache-control": "no-store"})
        return await self._handle(request, act)

    # -- poll (RFC 8936) ----------------------------------------------------------------

    async def poll(self, request: Request) -> Response:
        async def act(req: Request, client_id: str, _t: str,
                      body: dict[str, Any] | None) -> Response:
            stream = await self._own(client_id, req.path_params.get("stream_id"))
            if stream.method != DELIVERY_POLL:
                raise InvalidRequest("the stream is not a poll stream")
            body = body or {}
            unknown = set(body) - {"maxEvents", "returnImmediately", "ack", "setErrs"}
            if unknown:
                raise InvalidRequest(f"unknown poll parameter {sorted(unknown)[0][:40]!r}")
            max_events = body.get("maxEvents", 10)
            if not isinstance(max_events, int) or isinstance(max_events, bool) \
                    or not 0 <= max_events <= 100:
                raise InvalidRequest("maxEvents must be an integer from 0 to 100")
            immediately = body.get("returnImmediately", False)
            acks = body.get("ack", [])
            errs = body.get("setErrs", {})
            if not isinstance(immediately, bool) or not isinstance(acks, list) \
                    or not all(isinstance(a, str) for a in acks) or not isinstance(errs, dict):
                raise InvalidRequest("malformed poll request")
            now = self._id.clock.now()
            async with self._id.store.unit_of_work() as uow:
                await uow.signals.acknowledge(stream.stream_id, acks[:1000], at=now)
                for jti, err in list(errs.items())[:1000]:
                    detail = err.get("err") if isinstance(err, dict) else None
                    await uow.signals.acknowledge(stream.stream_id, [jti], at=now,
                                                  error=f"receiver: {str(detail)[:200]}")
            if stream.status != "enabled":  # paused: events are held; disabled: none
                return _json({"sets": {}, "moreAvailable": False})
            sets = await self._pending(stream.stream_id, max_events)
            if not sets and not immediately and max_events > 0 and stream.status == "enabled":
                await wait_event(self._s.queued, 10.0)
                sets = await self._pending(stream.stream_id, max_events)
            more = len(sets) > max_events
            chosen = dict(list(sets.items())[:max_events])
            return _json({"sets": chosen, "moreAvailable": more})
        return await self._handle(request, act)

    async def _pending(self, stream_id: str, limit: int) -> dict[str, str]:
        if limit == 0:
            return {}
        async with self._id.store.unit_of_work(read_only=True) as uow:
            pending = await uow.signals.pending_for(stream_id, limit=limit + 1)
        return {d.jti: d.token for d in pending}


def ssf_routes(signals: Signals) -> list[BaseRoute]:
    api = SsfApi(signals)
    config = ssf_configuration(signals.identity.settings.issuer)

    async def configuration(_: Request) -> Response:
        return JSONResponse(config, headers={"cache-control": "public, max-age=300"})

    return [
        Route("/.well-known/ssf-configuration", configuration),
        Route("/ssf/streams", api.streams, methods=["GET", "POST", "PATCH", "PUT", "DELETE"]),
        Route("/ssf/status", api.status, methods=["GET", "POST"]),
        Route("/ssf/subjects/add", api.add_subject, methods=["POST"]),
        Route("/ssf/subjects/remove", api.remove_subject, methods=["POST"]),
        Route("/ssf/verify", api.verify, methods=["POST"]),
        Route("/ssf/poll/{stream_id}", api.poll, methods=["POST"]),
    ]
