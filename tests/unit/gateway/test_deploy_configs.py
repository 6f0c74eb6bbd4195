"""The Envoy and Traefik configs in deploy/ agree with the gateway's contract: endpoint
paths, every identity header copied, example policies valid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tessera.gateway import load_policy
from tessera.gateway.forward_auth import EXT_AUTHZ_PREFIX, FORWARD_AUTH_PATH

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
IDENTITY_HEADERS = {"x-tessera-subject", "x-tessera-tenant", "x-tessera-scopes",
                    "x-tessera-sid-hash", "x-tessera-client", "x-tessera-token", "x-request-id"}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def envoy_filters() -> dict[str, Any]:
    config = load(DEPLOY / "envoy" / "envoy.yaml")
    (listener,) = config["static_resources"]["listeners"]
    (hcm,) = listener["filter_chains"][0]["filters"]
    return {f["name"]: f["typed_config"] for f in hcm["typed_config"]["http_filters"]}


def test_envoy_calls_ext_authz_and_copies_every_identity_header() -> None:
    filters = envoy_filters()
    names = list(filters)
    assert names == ["tessera.strip_identity", "envoy.filters.http.ext_authz",
                     "tessera.exchanged_token", "envoy.filters.http.router"]
    service = filters["envoy.filters.http.ext_authz"]["http_service"]
    assert service["path_prefix"] == EXT_AUTHZ_PREFIX
    response = service["authorization_response"]
    upstream = {p["exact"] for p in response["allowed_upstream_headers"]["patterns"]}
    assert upstream == IDENTITY_HEADERS
    client = {p["exact"] for p in response["allowed_client_headers"]["patterns"]}
    assert {"www-authenticate", "x-request-id"} <= client
    assert filters["envoy.filters.http.ext_authz"]["failure_mode_allow"] is False
    strip = filters["tessera.strip_identity"]["default_source_code"]["inline_string"]
    for header in IDENTITY_HEADERS - {"x-request-id"}:
        assert f'"{header}"' in strip


def test_traefik_forward_auth_copies_every_identity_header() -> None:
    config = load(DEPLOY / "traefik" / "dynamic.yaml")["http"]
    auth = config["middlewares"]["tessera-auth"]["forwardAuth"]
    assert auth["address"].endswith(FORWARD_AUTH_PATH)
    assert auth["trustForwardHeader"] is False
    assert {h.lower() for h in auth["authResponseHeaders"]} == IDENTITY_HEADERS
    stripped = config["middlewares"]["tessera-strip-identity"]["headers"]
    assert {h.lower() for h in stripped["customRequestHeaders"]} == IDENTITY_HEADERS - {
        "x-request-id"}
    assert config["routers"]["api"]["middlewares"] == ["tessera-strip-identity",
                                                      "tessera-auth"]


@pytest.mark.parametrize("proxy", ["envoy", "traefik"])
def test_the_example_policies_are_valid(proxy: str) -> None:
    policy = load_policy(DEPLOY / proxy / "policy.yaml")
    assert policy.default == "deny" and policy.exchange_targets
