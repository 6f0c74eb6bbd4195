"""Receivers as a relying party and an SSF receiver would write them, validating every
token with joserfc against the issuer's published JWKS (not with Tessera's own code):

- ``RelyingParty``: OIDC Back-Channel Logout 1.0 §2.6, every rule: ``typ`` ``logout+jwt``,
  signature by a published key with its own algorithm, exact ``iss``, ``aud`` naming the
  client, ``iat`` and an unexpired ``exp``, a ``jti``, ``events`` holding the logout
  member as an object, ``sub`` and/or ``sid`` (``sid`` when required), no ``nonce``.
  Answers 200, or 400 with an error; a repeated ``jti`` is acknowledged and not acted on
  twice (at-least-once delivery).
- ``SsfReceiver``: RFC 8935 push (``application/secevent+jwt``, 202 / 400 ``err``) and
  RFC 8936 poll (``poll``), SETs checked per RFC 8417 / SSF 1.0: ``typ``
  ``secevent+jwt``, signature, ``iss``, ``aud``, ``iat``, ``jti``, exactly one event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LEEWAY = 60

__all__ = ["LOGOUT_EVENT", "Logout", "ReceivedSet", "RelyingParty", "SsfReceiver",
           "receivers_app", "validate_set"]


class Invalid(Exception):
    pass


def _decode(token: str, jwks: dict[str, Any], typ: str) -> tuple[dict[str, Any],
                                                                    dict[str, Any]]:
    keys = KeySet.import_key_set(jwks)
    algorithms = sorted({str(k["alg"]) for k in jwks["keys"]})
    try:
        decoded = jwt.decode(token, keys, algorithms=algorithms)
    except (JoseError, ValueError) as exc:
        raise Invalid(f"signature or format: {type(exc).__name__}") from None
    header = dict(decoded.header)
    if str(header.get("typ", "")).lower() not in (typ, f"application/{typ}"):
        raise Invalid("wrong typ")
    kid = header.get("kid")
    match = [k for k in jwks["keys"] if k.get("kid") == kid]
    if not match or match[0].get("alg") != header.get("alg"):
        raise Invalid("algorithm does not match the key")
    return header, dict(decoded.claims)


def _check_common(claims: dict[str, Any], *, issuer: str, audience: str, now: float) -> None:
    registry = jwt.JWTClaimsRegistry(now=int(now), leeway=LEEWAY,
                                     iss={"essential": True, "value": issuer},
                                     aud={"essential": True, "value": audience},
                                     iat={"essential": True},
                                     jti={"essential": True})
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise Invalid(f"claims: {exc.error}") from None
    if not isinstance(claims.get("jti"), str) or not claims["jti"]:
        raise Invalid("jti")


@dataclass
class Logout:
    claims: dict[str, Any]
    header: dict[str, Any]
    token: str
    received_at: float


@dataclass
class RelyingParty:
    client_id: str
    issuer: str
    jwks: dict[str, Any]
    now: Callable[[], float]
    session_required: bool = False
    logouts: list[Logout] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    fail_with: int | None = None
    """Answer every request with this status (a broken RP)."""
    delay: float = 0.0

    def validate(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        header, claims = _decode(token, self.jwks, "logout+jwt")
        _check_common(claims, issuer=self.issuer, audience=self.client_id, now=self.now())
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp + LEEWAY < self.now():
            raise Invalid("exp missing or expired")
        events = claims.get("events")
        if not isinstance(events, dict) or not isinstance(events.get(LOGOUT_EVENT), dict):
            raise Invalid("events")
        if "sub" not in claims and "sid" not in claims:
            raise Invalid("neither sub nor sid")
        if self.session_required and not isinstance(claims.get("sid"), str):
            raise Invalid("sid required")
        if "nonce" in claims:
            raise Invalid("nonce present")
        return header, claims

    async def endpoint(self, request: Request) -> Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_with is not None:
            return JSONResponse({"error": "unavailable"}, self.fail_with)
        if request.headers.get("content-type") != "application/x-www-form-urlencoded":
            self.rejected.append("content type")
            return JSONResponse({"error": "invalid_request"}, 400)
        form = parse_qs((await request.body()).decode(), strict_parsing=False)
        values = form.get("logout_token", [])
        token = values[0] if len(values) == 1 else None
        if not isinstance(token, str):
            self.rejected.append("no logout_token")
            return JSONResponse({"error": "invalid_request"}, 400)
        try:
            header, claims = self.validate(token)
        except Invalid as exc:
            self.rejected.append(str(exc))
            return JSONResponse({"error": "invalid_request", "error_description": str(exc)},
                                400)
        if any(seen.claims["jti"] == claims["jti"] for seen in self.logouts):
            self.duplicates.append(claims["jti"])
            return Response(status_code=200, headers={"cache-control": "no-store"})
        self.logouts.append(Logout(claims, header, token, self.now()))
        return Response(status_code=200, headers={"cache-control": "no-store"})


@dataclass
class ReceivedSet:
    claims: dict[str, Any]
    event_type: str
    payload: dict[str, Any]
    token: str


def validate_set(token: str, *, jwks: dict[str, Any], issuer: str, audience: str,
                 now: float) -> ReceivedSet:
    _header, claims = _decode(token, jwks, "secevent+jwt")
    _check_common(claims, issuer=issuer, audience=audience, now=now)
    events = claims.get("events")
    if not isinstance(events, dict) or len(events) != 1:
        raise Invalid("a SET carries exactly one event")
    (event_type, payload), = events.items()
    if not isinstance(payload, dict):
        raise Invalid("event payload")
    return ReceivedSet(claims, event_type, payload, token)


@dataclass
class SsfReceiver:
    audience: str
    issuer: str
    jwks: dict[str, Any]
    now: Callable[[], float]
    authorization: str | None = None
    received: list[ReceivedSet] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    fail_with: int | None = None

    @property
    def jtis(self) -> list[str]:
        return [r.claims["jti"] for r in self.received]

    def of_type(self, suffix: str) -> list[ReceivedSet]:
        return [r for r in self.received if r.event_type.endswith(suffix)]

    async def push(self, request: Request) -> Response:
        if self.fail_with is not None:
            return JSONResponse({"err": "unavailable"}, self.fail_with)
        if self.authorization is not None \
                and request.headers.get("authorization") != self.authorization:
            return JSONResponse({"err": "authentication_failed"}, 401)
        if request.headers.get("content-type") != "application/secevent+jwt":
            return JSONResponse({"err": "invalid_request", "description": "content type"}, 400)
        token = (await request.body()).decode()
        try:
            received = validate_set(token, jwks=self.jwks, issuer=self.issuer,
                                    audience=self.audience, now=self.now())
        except Invalid as exc:
            self.rejected.append(str(exc))
            return JSONResponse({"err": "invalid_request", "description": str(exc)}, 400)
        if received.claims["jti"] not in self.jtis:
            self.received.append(received)
        return Response(status_code=202)

    async def poll(self, http: httpx.AsyncClient, url: str, token: str, *,
                   max_events: int = 10, ack: bool = True) -> dict[str, Any]:
        """One RFC 8936 poll: validate what came, acknowledge it in the next request."""
        response = await http.post(url, json={"maxEvents": max_events,
                                              "returnImmediately": True},
                                   headers={"authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        acks = []
        for jti, set_token in body["sets"].items():
            received = validate_set(set_token, jwks=self.jwks, issuer=self.issuer,
                                    audience=self.audience, now=self.now())
            assert received.claims["jti"] == jti
            if jti not in self.jtis:
                self.received.append(received)
            acks.append(jti)
        if ack and acks:
            answer = await http.post(url, json={"ack": acks, "maxEvents": 0,
                                                "returnImmediately": True},
                                     headers={"authorization": f"Bearer {token}"})
            assert answer.status_code == 200, answer.text
        return body


def receivers_app(rp: dict[str, RelyingParty], ssf: dict[str, SsfReceiver]) -> Starlette:
    """One app serving ``/rp/<client_id>/logout`` and ``/ssf/<name>/events``."""

    async def rp_endpoint(request: Request) -> Response:
        party = rp.get(request.path_params["name"])
        if party is None:
            return Response(status_code=404)
        return await party.endpoint(request)

    async def ssf_endpoint(request: Request) -> Response:
        receiver = ssf.get(request.path_params["name"])
        if receiver is None:
            return Response(status_code=404)
        return await receiver.push(request)

    return Starlette(routes=[Route("/rp/{name}/logout", rp_endpoint, methods=["POST"]),
                             Route("/ssf/{name}/events", ssf_endpoint, methods=["POST"])])
