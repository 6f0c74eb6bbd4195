"""Helpers for VerifierService tests: an issuer stub on ``httpx.MockTransport`` (JWKS and
introspection) and a service wired to it on a fixed clock, without a revocation feed."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
from prometheus_client import CollectorRegistry

from tessera.core.clock import FixedClock
from tessera.verifier.service import VerifierService
from tessera.verifier.settings import VerifierSettings

from ._support import AUDIENCE, ISSUER, NOW, Minter

CLIENT_ID = "orders-service"
CLIENT_SECRET = "orders-secret-value"


class IssuerStub:
    """Answers ``/jwks`` from the minter and ``/introspect`` with ``introspection``
    (a dict body, an ``httpx.Response``, or an exception to raise)."""

    def __init__(self, minter: Minter) -> None:
        self.minter = minter
        self.introspection: dict[str, Any] | httpx.Response | Exception = {"active": False}
        self.introspected: list[dict[str, Any]] = []
        self.jwks_requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/jwks":
            self.jwks_requests += 1
            return httpx.Response(200, json=self.minter.jwks())
        if request.url.path == "/introspect" and request.method == "POST":
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            self.introspected.append({"form": form,
                                      "authorization": request.headers.get("authorization")})
            answer = self.introspection
            if isinstance(answer, Exception):
                raise answer
            if isinstance(answer, httpx.Response):
                return answer
            return httpx.Response(200, json=answer)
        return httpx.Response(404)

    def active(self, token_claims: dict[str, Any]) -> None:
        """Make introspection answer ``active: true`` with these claims."""
        self.introspection = {"active": True, "token_type": "Bearer", **token_claims}


def basic(client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def make_service(minter: Minter, *, clock: FixedClock | None = None,
                 timer: Callable[[], float] | None = None, bus: Any = None,
                 fed: bool = True, **settings: Any) -> tuple[VerifierService, IssuerStub]:
    """``fed``: a ``source="none"`` state starts loaded and current (``fresh``); pass
    False for one that never loaded a snapshot."""
    stub = IssuerStub(minter)
    values: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, "source": "none",
                              "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                              "service_name": "orders-api", **settings}
    extra: dict[str, Any] = {} if timer is None else {"timer": timer}
    if bus is not None:
        extra["bus"] = bus
    service = VerifierService(VerifierSettings(**values),
                              clock=clock if clock is not None else FixedClock(NOW),
                              transport=httpx.MockTransport(stub),
                              registry=CollectorRegistry(), **extra)
    if fed and values["source"] == "none":
        fresh(service)  # a state fed by hand: loaded and current unless a test says not
    return service, stub


def fresh(service: VerifierService) -> None:
    """The state is loaded and holds every event committed until now (a state fed by
    hand vouches for itself: ``confirm``)."""
    service.state.confirm(service.clock.now())


def revoke_session(service: VerifierService, sid: str = "sid-1", seq: int = 1) -> None:
    service.state.apply({"seq": seq, "kind": "session.revoked", "key": sid, "at": NOW,
                         "expires_at": NOW + 600}, now=service.clock.now())


def audit_events(records: list[logging.LogRecord]) -> Iterator[dict[str, Any]]:
    import json

    for record in records:
        if record.name == "tessera.audit":
            yield json.loads(record.getMessage())


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}
