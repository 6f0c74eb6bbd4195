"""``tessera gateway --policy FILE``: run the edge gateway's decision endpoint (uvicorn).

Settings: ``TESSERA_VERIFIER_*`` (issuer, identity_url, client_id/secret of the gateway's
client — revocation feed and token exchange —, source, ...) and ``TESSERA_GATEWAY_*``.
A policy problem exits with status 2 and one clear message; so does each wrong or missing
setting (one line each, naming the variable).
"""

from __future__ import annotations

import logging
from pathlib import Path

import click
from pydantic import ValidationError

from tessera import httpserver
from tessera.cli._common import fail
from tessera.cli._errors import ConfigurationError, describe_validation

__all__ = ["gateway"]


@click.command()
@click.option("--policy", "policy_path", required=True, envvar="TESSERA_GATEWAY_POLICY",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Route policy file (YAML).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--check", is_flag=True,
              help="Validate the policy and settings, print the routes and exit.")
def gateway(policy_path: Path, host: str, port: int, check: bool) -> None:
    """Run the forward-auth decision endpoint (nginx, Envoy, Traefik)."""
    from tessera.gateway import (
        GatewayConfigError,
        GatewaySettings,
        PolicyError,
        create_gateway,
        load_policy,
        verifier_settings,
    )

    try:
        policy = load_policy(policy_path)
    except PolicyError as exc:
        fail(str(exc))
        return
    try:
        settings = verifier_settings()
        extra = GatewaySettings()
    except ValidationError as exc:
        raise ConfigurationError(describe_validation(exc)) from None
    try:
        app = create_gateway(policy, settings, extra)
    except GatewayConfigError as exc:
        fail(str(exc))
        return
    if check:
        click.echo(f"{policy_path}: {len(policy.rules)} route(s), default {policy.default}")
        for rule in policy.rules:
            click.echo(f"  {rule.description}")
        return
    _log_to_stderr()
    from tessera.observability.tracing import configure_tracing

    configure_tracing("tessera-gateway")  # TESSERA_TRACING__* / OTEL_* (docs/tracing.md)
    click.echo(f"tessera gateway: {len(policy.rules)} route(s) from {policy_path}, "
               f"listening on http://{host}:{port}", err=True)
    httpserver.run(app, limits=extra.server, host=host, port=port, access_log=False,
                   log_level="warning", server_header=False,
                   timeout_graceful_shutdown=3)


def _log_to_stderr() -> None:
    """Decision events (``tessera.audit``) and gateway warnings as JSON lines on stderr."""
    root = logging.getLogger("tessera")
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
