"""A world for the outbound-signal flows: the identity service on a loopback http issuer
(so loopback http receivers are allowed), relying parties and SSF receivers served by
one in-process app that the delivery worker reaches through an ASGI transport, and
``pump`` to run fan-out and delivery to quiescence (the background tasks run only under
a server's lifespan)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tessera.application import admin
from tessera.core.clock import FixedClock
from tessera.core.signals import SSF_EVENTS_SUPPORTED
from tessera.identity.app import build_app
from tessera.identity.compose import Identity
from tessera.identity.signals import build_signals
from tessera.settings import Settings
from tessera.store.sql import SqlStore
from tests.conftest import make_identity, make_settings
from tests.e2e.helpers import client_token
from tests.signals_receivers import RelyingParty, SsfReceiver, receivers_app
from tests.support import REDIRECT, AppClient, TesseraDriver

LOOP = "http://127.0.0.1:8000"
RECEIVERS = "http://127.0.0.1:9"
"""Where the receivers 'listen' (the ASGI transport answers for any address)."""

__all__ = ["LOOP", "RECEIVERS", "World", "pump", "signals_identity", "signals_settings"]


@dataclass
class World:
    identity: Identity
    tessera: TesseraDriver
    jwks: dict[str, Any]
    rps: dict[str, RelyingParty] = field(default_factory=dict)
    receivers: dict[str, SsfReceiver] = field(default_factory=dict)

    async def relying_party(self, name: str, *, session_required: bool = False,
                            tenant: str | None = None) -> tuple[AppClient, RelyingParty]:
        client, secret = await admin.create_client(
            self.identity.admin, name=name, grants=("authorization_code", "refresh_token"),
            redirect_uris=(REDIRECT,), scope="api:read", audiences=("https://api.example",),
            tenant_id=tenant, backchannel_logout_uri=f"{RECEIVERS}/rp/{name}/logout",
            backchannel_logout_session_required=session_required)
        party = RelyingParty(client.client_id, LOOP, self.jwks, self.identity.clock.now,
                             session_required=session_required)
        self.rps[name] = party
        return AppClient(client.client_id, secret), party

    async def ssf_client(self, *, tenant: str | None = None) -> tuple[AppClient, str]:
        app = await self.tessera.client(scope="tessera:ssf", audiences=(), tenant=tenant)
        return app, await client_token(self.tessera, app, scope="tessera:ssf")

    async def push_stream(self, name: str, *, tenant: str | None = None,
                          events: tuple[str, ...] = SSF_EVENTS_SUPPORTED,
                          **config: Any) -> tuple[str, SsfReceiver, str]:
        app, token = await self.ssf_client(tenant=tenant)
        response = await self.tessera.http.post(
            "/ssf/streams", headers={"authorization": f"Bearer {token}"},
            json={"delivery": {"method": "urn:ietf:rfc:8935",
                               "endpoint_url": f"{RECEIVERS}/ssf/{name}/events"},
                  "events_requested": list(events), **config})
        assert response.status_code == 201, response.text
        receiver = SsfReceiver(app.client_id, LOOP, self.jwks, self.identity.clock.now)
        self.receivers[name] = receiver
        return response.json()["stream_id"], receiver, token


async def pump(identity: Identity) -> None:
    """Fan out every committed event and attempt every due delivery, until quiet."""
    signals = identity.signals
    assert signals is not None
    for _ in range(50):
        moved = await signals.fanout.fan_out_once()
        sent = await signals.pusher.push_once()
        if not moved and not sent:
            return
    raise AssertionError("signals did not settle")


def signals_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"issuer": LOOP,
                              "signals": {"backoff_base": 1.0, "max_attempts": 3}}
    values.update(overrides)
    return make_settings(tmp_path, **values)


async def signals_identity(settings: Settings, store: SqlStore, clock: FixedClock,
                           rps: dict[str, RelyingParty], receivers: dict[str, SsfReceiver]
                           ) -> Identity:
    identity = await make_identity(settings, store, clock)
    assert identity.signals is not None
    await identity.signals.aclose()
    identity.signals = build_signals(
        identity, transport=httpx.ASGITransport(app=receivers_app(rps, receivers)))
    return identity


@pytest.fixture
async def world(tmp_path: Path, sqlite_store: SqlStore, clock: FixedClock
                ) -> AsyncIterator[World]:
    rps: dict[str, RelyingParty] = {}
    receivers: dict[str, SsfReceiver] = {}
    identity = await signals_identity(signals_settings(tmp_path), sqlite_store, clock, rps,
                                      receivers)
    transport = httpx.ASGITransport(app=build_app(identity))
    async with httpx.AsyncClient(transport=transport, base_url=LOOP) as http:
        jwks = (await http.get("/jwks")).json()
        yield World(identity, TesseraDriver(identity, http), jwks, rps, receivers)
    assert identity.signals is not None
    await identity.signals.aclose()
    await identity.audit.aclose()
