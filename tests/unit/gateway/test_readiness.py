"""The gateway's ``/readyz``: ready once its verifier holds the JWKS and (with a
revocation source) the first snapshot; liveness (``/healthz``) is unaffected."""

from __future__ import annotations

from tests.unit.gateway._support import NOW, IdentityStub, gateway


async def test_ready_once_the_jwks_is_loaded_without_a_feed() -> None:
    async with gateway() as gw:
        response = await gw.http.get("/readyz")
        assert response.status_code == 200
        assert response.json() == {"status": "ready"}
        assert response.headers["cache-control"] == "no-store"


async def test_not_ready_without_the_jwks() -> None:
    async with gateway(stub=IdentityStub(jwks_down=True)) as gw:
        response = await gw.http.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "missing": ["jwks"]}
        assert (await gw.http.get("/healthz")).status_code == 200


async def test_not_ready_until_the_first_revocation_snapshot() -> None:
    # The stub has no feed: the follower keeps failing, the snapshot never arrives.
    async with gateway(source="http") as gw:
        gw.authorizer.service.state.loaded = False  # the helper feeds it; this one is not
        response = await gw.http.get("/readyz")
        assert response.status_code == 503
        assert response.json()["missing"] == ["revocation_snapshot"]
        gw.authorizer.service.state.load_snapshot({"seq": 3, "events": []}, now=NOW)
        assert (await gw.http.get("/readyz")).status_code == 200
