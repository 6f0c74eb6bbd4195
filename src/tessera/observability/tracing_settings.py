"""Tracing settings: the ``tracing`` section of the identity service's settings, and read on
their own (``TESSERA_TRACING__*``) by the gateway and services using the verifier SDK. Kept
apart from ``tessera.settings`` so that ``observability.tracing`` never loads the server's
settings."""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["TracingSettings"]

class TracingSettings(BaseSettings):
    """OpenTelemetry tracing (docs/tracing.md), off by default. Also read on its own
    (``TESSERA_TRACING__*``) by processes without ``Settings``: the gateway, services
    using the verifier SDK (``observability.tracing.configure_tracing``)."""

    model_config = SettingsConfigDict(env_prefix="TESSERA_TRACING__", extra="ignore")

    enabled: bool = False
    """Install the OpenTelemetry SDK and export spans (needs ``tessera[tracing]``).
    Setting ``OTEL_EXPORTER_OTLP_ENDPOINT`` turns tracing on too; ``OTEL_SDK_DISABLED=true``
    keeps it off. Off, spans are the API's no-op spans (``traceparent`` is passed on)."""
    exporter: Literal["otlp", "console"] = "otlp"
    """``otlp``: OTLP over HTTP/protobuf, configured by the standard ``OTEL_EXPORTER_OTLP_*``
    variables; ``console``: spans as JSON on stderr (development)."""
