"""``tessera bff``: run the backend-for-frontend (token handler) for a single-page app.

Settings: ``TESSERA_BFF_*`` (docs/browser-sessions.md): ``PUBLIC_URL``, ``ISSUER``,
``CLIENT_ID``, ``CLIENT_SECRET``, ``SECRET_KEY`` (``tessera bff --new-key``), ``ROUTES``,
``REDIS_URL``, ``STATIC_DIR``, ``DPOP`` ... A wrong or missing setting exits with status 2
and one line naming the variable.
"""

from __future__ import annotations

import logging

import click
from pydantic import ValidationError

from tessera import httpserver
from tessera.cli._errors import ConfigurationError, describe_validation

__all__ = ["bff"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True, type=int)
@click.option("--static", "static_dir", default=None,
              type=click.Path(file_okay=False, exists=True),
              help="Serve this directory at / (the single-page app); "
                   "overrides TESSERA_BFF_STATIC_DIR.")
@click.option("--check", is_flag=True, help="Validate the settings, print a summary, exit.")
@click.option("--new-key", is_flag=True,
              help="Print a fresh TESSERA_BFF_SECRET_KEY value and exit.")
def bff(host: str, port: int, static_dir: str | None, check: bool, new_key: bool) -> None:
    """Run the backend-for-frontend: cookie sessions for a SPA, tokens kept server side."""
    from tessera.keys import Sealer

    if new_key:
        click.echo(Sealer.new_kek_b64())
        return
    from tessera.bff import BffSettings, create_bff

    try:
        settings = (BffSettings(static_dir=static_dir) if static_dir
                    else BffSettings())
    except ValidationError as exc:
        raise ConfigurationError(describe_validation(exc)) from None
    storage = "redis" if settings.redis_url else "memory (development only)"
    liveness = ("revocation feed" if settings.revocation_feed else
                f"introspection every {settings.session_check_interval:g}s")
    if check:
        click.echo(f"tessera bff: {settings.public_url} as client {settings.client_id} of "
                   f"{settings.issuer}; sessions in {storage}; "
                   f"{len(settings.routes)} upstream route(s); revocations by {liveness}")
        for name, url in sorted(settings.routes.items()):
            click.echo(f"  /bff/api/{name}/ -> {url}/")
        return
    app = create_bff(settings)
    root = logging.getLogger("tessera")
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
    click.echo(f"tessera bff: {settings.public_url} (sessions in {storage}), listening on "
               f"http://{host}:{port}", err=True)
    httpserver.run(app, limits=settings.server, host=host, port=port, access_log=False,
                   log_level="warning", server_header=False, timeout_graceful_shutdown=3)
