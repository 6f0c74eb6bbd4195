"""VerifierService composition: settings validation, event sources, start/aclose, and a
JWKS that cannot be had (503, never a crash)."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from tessera.bus import InProcessBus
from tessera.core.clock import FixedClock
from tessera.core.revocation import RevocationEvent
from tessera.verifier import Denied, Reason
from tessera.verifier.revocation.sources import HttpFeedSource
from tessera.verifier.service import VerifierService
from tessera.verifier.settings import VerifierSettings
from tests.polling import eventually

from ._services import fresh, make_service
from ._support import AUDIENCE, ISSUER, NOW, Minter


def test_settings_need_client_credentials_for_the_feed_and_introspection() -> None:
    with pytest.raises(ValidationError, match="client_id and client_secret"):
        VerifierSettings(issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(ValidationError, match="client_id and client_secret"):
        VerifierSettings(issuer=ISSUER, audience=AUDIENCE, source="none",
                         strict_fallback="introspect")
    with pytest.raises(ValidationError, match="redis_url"):
        VerifierSettings(issuer=ISSUER, audience=AUDIENCE, source="redis", client_id="c",
                         client_secret="s")
    with pytest.raises(ValidationError):
        VerifierSettings(issuer=ISSUER, audience=AUDIENCE, source="none", leeway=61)


def test_settings_come_from_the_environment_and_hide_the_secret(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESSERA_VERIFIER_ISSUER", ISSUER)
    monkeypatch.setenv("TESSERA_VERIFIER_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("TESSERA_VERIFIER_CLIENT_ID", "svc")
    monkeypatch.setenv("TESSERA_VERIFIER_CLIENT_SECRET", "very-secret")
    monkeypatch.setenv("TESSERA_VERIFIER_MAX_STALENESS", "2.5")
    settings = VerifierSettings()
    assert (settings.issuer, settings.max_staleness, settings.source) == (ISSUER, 2.5, "http")
    assert "very-secret" not in repr(settings)


async def test_the_http_source_uses_the_identity_url(minter: Minter) -> None:
    service = VerifierService(VerifierSettings(
        issuer=ISSUER, identity_url="http://identity.internal:8000/", audience=AUDIENCE,
        client_id="svc", client_secret="s"), clock=FixedClock(NOW))
    assert service.follower is not None
    assert isinstance(service.follower.source, HttpFeedSource)
    assert service.jwks.jwks_uri == "http://identity.internal:8000/jwks"
    assert service.policy.issuer == ISSUER
    await service.aclose()


async def test_an_in_process_bus_feeds_the_state(minter: Minter) -> None:
    bus = InProcessBus()
    bus_service, _ = make_service(minter, source="bus", bus=bus)
    await bus.mark(0, NOW)  # what the outbox relay does when it finds nothing to move
    await bus_service.start(wait=1)
    try:
        token = minter.mint()
        await eventually(lambda: not bus_service.is_stale(strict=True), what="fresh")
        assert (await bus_service.check(token, strict=True)).sid == "sid-1"
        await bus.publish([RevocationEvent("session.revoked", "sid-1", NOW, NOW + 600,
                                           seq=1)])
        await eventually(lambda: bus_service.state.cursor == 1, what="event applied")
        with pytest.raises(Denied) as denied:
            await bus_service.check(token)
        assert denied.value.reason is Reason.SESSION_REVOKED
    finally:
        await bus_service.aclose()


def test_source_bus_without_a_bus_is_a_configuration_error() -> None:
    settings = VerifierSettings(issuer=ISSUER, audience=AUDIENCE, source="bus")
    with pytest.raises(ValueError, match="bus"):
        VerifierService(settings)


async def test_no_keys_is_a_503_and_starting_does_not_raise(minter: Minter) -> None:
    settings = VerifierSettings(issuer=ISSUER, audience=AUDIENCE, source="none")
    service = VerifierService(settings, clock=FixedClock(NOW),
                              transport=httpx.MockTransport(lambda _: httpx.Response(500)))
    async with service:
        fresh(service)
        with pytest.raises(Denied) as denied:
            await service.check(minter.mint())
    assert denied.value.status == 503
    assert service.registry.get_sample_value(
        "tessera_verifier_decisions_total",
        {"outcome": "denied", "reason": "keys_unavailable"}) == 1
