"""The demo's outside listeners: a relying party's back-channel logout endpoint and an
SSF push receiver (RFC 8935), in one small app. Each validates what it receives with
``tessera.jose`` against the issuer's JWKS (signature, ``typ``, ``iss``, ``aud``, events) and
records when it arrived."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tessera import jose

__all__ = ["Heard", "Listeners"]

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@dataclass
class Heard:
    at: float
    """``time.perf_counter()`` when it arrived."""
    claims: dict[str, Any]


@dataclass
class Listeners:
    issuer: str
    rp_client_id: str
    ssf_audience: str
    jwks: dict[str, Any] = field(default_factory=dict)
    logouts: list[Heard] = field(default_factory=list)
    sets: list[Heard] = field(default_factory=list)

    def _decode(self, token: str, typ: str, audience: str) -> dict[str, Any]:
        header, claims = jose.JwkSet(self.jwks).decode(
            token, algorithms=sorted({k["alg"] for k in self.jwks["keys"]}))
        if header.get("typ") != typ:
            raise ValueError("typ")
        jose.check_registered_claims(claims, now=time.time(), leeway=0,
                                     iss={"essential": True, "value": self.issuer},
                                     aud={"essential": True, "value": audience},
                                     jti={"essential": True})
        return claims

    async def logout(self, request: Request) -> Response:
        token = parse_qs((await request.body()).decode()).get("logout_token", [""])[0]
        try:
            claims = self._decode(token, "logout+jwt", self.rp_client_id)
            if LOGOUT_EVENT not in claims.get("events", {}) or "nonce" in claims:
                raise ValueError("events")
        except (jose.JoseError, ValueError) as exc:
            return JSONResponse({"error": "invalid_request",
                                 "error_description": str(exc)}, 400)
        self.logouts.append(Heard(time.perf_counter(), claims))
        return Response(status_code=200)

    async def events(self, request: Request) -> Response:
        try:
            claims = self._decode((await request.body()).decode(), "secevent+jwt",
                                  self.ssf_audience)
        except (jose.JoseError, ValueError) as exc:
            return JSONResponse({"err": "invalid_request", "description": str(exc)}, 400)
        self.sets.append(Heard(time.perf_counter(), claims))
        return Response(status_code=202)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/rp/logout", self.logout, methods=["POST"]),
                                 Route("/ssf/events", self.events, methods=["POST"])])
