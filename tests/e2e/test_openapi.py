"""The OpenAPI document at ``/openapi.json`` describes exactly the routes the app serves.

A route without a document entry, or an entry without a route, fails here: describe a new
route in the section of its area (``src/tessera/identity/openapi/``)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate
from starlette.routing import Mount, Route

from tessera.core.clock import FixedClock
from tessera.identity.app import build_app
from tessera.identity.openapi import (
    OPENAPI_PATH,
    DocumentContext,
    build_document,
    documented_operations,
    route_operations,
    undocumented,
    unrouted,
)
from tessera.store.sql import SqlStore
from tests.conftest import ISSUER, make_identity, make_settings

CONFIGURATIONS = {
    "defaults": {},
    "console off, metrics on their own port": {"console": {"enabled": False},
                                               "metrics": {"port": 9464}},
    "dpop off, scrape token": {"dpop": {"enabled": False},
                               "metrics": {"token": "t" * 40}},
}


@pytest.mark.parametrize("overrides", CONFIGURATIONS.values(), ids=CONFIGURATIONS.keys())
async def test_every_route_is_documented_and_every_entry_routed(
        tmp_path: Path, sqlite_store: SqlStore, clock: FixedClock,
        overrides: dict[str, object]) -> None:
    identity = await make_identity(make_settings(tmp_path, **overrides), sqlite_store, clock)
    try:
        app = build_app(identity)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url=ISSUER) as http:
            response = await http.get(OPENAPI_PATH)
        assert response.status_code == 200
        document = response.json()
        validate(document)  # a valid OpenAPI 3.1 document
        assert document["openapi"] == "3.1.0"
        assert document["servers"] == [{"url": ISSUER}]
        assert not undocumented(app.routes, document), "routes without a document entry"
        assert not unrouted(app.routes, document), "document entries without a route"
        ops = documented_operations(document)
        assert ("/token", "post") in ops and ("/openapi.json", "get") in ops
        assert (("/console/sessions/{sid}", "get") in ops) == identity.settings.console.enabled
        assert (("/metrics", "get") in ops) == (identity.settings.metrics.port is None)
    finally:
        await identity.audit.aclose()


def test_the_comparison_finds_a_missing_entry_and_a_missing_route() -> None:
    async def endpoint(_: object) -> None:
        return None

    document = build_document(DocumentContext(issuer=ISSUER, grant_types=("client_credentials",),
                                              console=False))
    routes = [Route(path, endpoint, methods=[m.upper() for m in item])
              for path, item in document["paths"].items()]
    assert not undocumented(routes, document) and not unrouted(routes, document)

    extra = [*routes, Mount("/new", routes=[Route("/thing", endpoint, methods=["PUT"])])]
    assert undocumented(extra, document) == {("/new/thing", "put")}
    fewer = [r for r in routes if r.path != "/jwks"]
    assert unrouted(fewer, document) == {("/jwks", "get")}
    wrong_method = [*fewer, Route("/jwks", endpoint, methods=["POST"])]
    assert undocumented(wrong_method, document) == {("/jwks", "post")}
    assert unrouted(wrong_method, document) == {("/jwks", "get")}
    # Starlette's implicit HEAD for GET routes is the same operation
    assert route_operations([Route("/x", endpoint)]) == {("/x", "get")}


def test_form_bodies_and_oauth_errors_are_described() -> None:
    document = build_document(DocumentContext(
        issuer=ISSUER, grant_types=("authorization_code", "client_credentials",
                                    "refresh_token")))
    token = document["paths"]["/token"]["post"]
    form = token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form["properties"]["grant_type"]["enum"] == ["authorization_code",
                                                        "client_credentials", "refresh_token"]
    assert {s["title"] for s in form["oneOf"]} == {"authorization_code", "client_credentials",
                                                    "refresh_token"}
    for status in ("400", "401", "503"):
        error = token["responses"][status]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/OAuthError"}
    assert "WWW-Authenticate" in token["responses"]["401"]["headers"]
    assert document["components"]["schemas"]["OAuthError"]["required"] == ["error"]
