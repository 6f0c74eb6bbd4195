"""Identity service metrics: derived from committed audit events plus endpoint latency."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tessera.core.clock import FixedClock
from tessera.identity.compose import Identity
from tests.conftest import METRICS_AUTH
from tests.support import AppClient, TesseraDriver


async def scrape(http: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await http.get("/metrics", headers=METRICS_AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_issuance_refresh_reuse_and_errors_are_counted(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    svc = await tessera.client()
    for _ in range(3):
        assert (await tessera.token(svc, grant_type="client_credentials")).status_code == 200
    bad = await tessera.token(AppClient(svc.client_id, "wrong"), grant_type="client_credentials")
    assert bad.status_code == 401
    web = await tessera.web_client()
    await tessera.user()
    tokens = await tessera.login_tokens(web)
    first = tokens["refresh_token"]
    assert (await tessera.token(web, grant_type="refresh_token",
                                refresh_token=first)).status_code == 200
    clock.advance(61)  # past the lost-response retry window: reuse
    assert (await tessera.token(web, grant_type="refresh_token",
                                refresh_token=first)).status_code == 400  # reuse
    await identity.audit.aclose()
    m = await scrape(tessera.http)
    assert m[("tessera_tokens_issued_total", (("grant_type", "client_credentials"),))] == 3
    assert m[("tessera_tokens_issued_total", (("grant_type", "authorization_code"),))] == 1
    assert m[("tessera_tokens_issued_total", (("grant_type", "refresh_token"),))] == 1
    assert m[("tessera_refresh_reuse_detected_total", ())] == 1
    assert m[("tessera_token_request_errors_total",
              (("error", "invalid_client"), ("grant_type", "client_credentials")))] == 1
    assert m[("tessera_token_request_seconds_count",
              (("grant_type", "client_credentials"), ("outcome", "ok")))] == 3
    assert m[("tessera_revocations_total", (("kind", "session"),))] == 1


async def test_login_failures_are_counted(tessera: TesseraDriver) -> None:
    web = await tessera.web_client()
    await tessera.user()
    with pytest.raises(AssertionError, match="Wrong username or password"):
        await tessera.authorize_code(web, password="wrong password")
    m = await scrape(tessera.http)
    assert m[("tessera_login_failures_total", (("reason", "bad_credentials"),))] == 1
