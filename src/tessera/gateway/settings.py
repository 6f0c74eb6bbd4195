"""Settings of the edge gateway: ``TESSERA_VERIFIER_*`` (the SDK's ``VerifierSettings``)
for verification and the revocation feed, ``TESSERA_GATEWAY_*`` for what only the gateway
does, and the policy file (``--policy``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tessera.settings import ServerSettings
from tessera.verifier.settings import VerifierSettings

__all__ = ["DEFAULT_AUDIENCE", "GatewayServerSettings", "GatewaySettings", "verifier_settings"]

DEFAULT_AUDIENCE: Final = "tessera-gateway"
"""``audience`` (and decision-event ``service``) when ``TESSERA_VERIFIER_AUDIENCE`` is unset:
routes without their own ``audience`` then accept tokens issued for the gateway."""


class GatewayServerSettings(ServerSettings):
    """``ServerSettings`` with room for what a proxy in front may pass on."""

    max_header_bytes: int = Field(64 * 1024, ge=4096, le=1024 * 1024)
    """As ``ServerSettings.max_header_bytes``; 64 KiB by default, what nginx's
    ``large_client_header_buffers 4 16k`` (deploy/nginx) lets through."""


class GatewaySettings(BaseSettings):
    """What the gateway adds to the verifier's settings (``TESSERA_GATEWAY_*``)."""

    model_config = SettingsConfigDict(env_prefix="TESSERA_GATEWAY_", frozen=True,
                                      extra="forbid", env_nested_delimiter="__")

    token_endpoint: str | None = None
    """RFC 8693 token endpoint for ``exchange_to`` routes; defaults to
    ``{identity_url or issuer}/token``."""
    exchange_timeout: float = Field(2.0, gt=0, le=30)
    """Upper bound in seconds on one token-exchange call (the request waits for it)."""
    exchange_cache_size: int = Field(10_000, ge=1)
    """Exchanged tokens kept (least recently used dropped first)."""
    exchange_refresh_margin: float = Field(15.0, ge=0)
    """Stop handing out a cached exchanged token this many seconds (at most half its
    life) before it expires."""
    server: GatewayServerSettings = GatewayServerSettings()
    """Bounds of the gateway's HTTP server (``TESSERA_GATEWAY_SERVER__MAX_HEADER_BYTES``,
    ``__HEADER_TIMEOUT``, ``__MAX_CONNECTIONS``)."""


def verifier_settings(environ: Mapping[str, str] | None = None,
                      **overrides: Any) -> VerifierSettings:
    """``VerifierSettings`` from ``TESSERA_VERIFIER_*``, with the gateway's defaults for
    ``audience`` and ``service_name`` (``tessera-gateway``) when they are not set."""
    env = os.environ if environ is None else environ
    names = {k.upper() for k in env}
    values: dict[str, Any] = {}
    if "TESSERA_VERIFIER_AUDIENCE" not in names:
        values["audience"] = DEFAULT_AUDIENCE
    if "TESSERA_VERIFIER_SERVICE_NAME" not in names:
        values["service_name"] = DEFAULT_AUDIENCE
    values.update(overrides)
    return VerifierSettings(**values)
