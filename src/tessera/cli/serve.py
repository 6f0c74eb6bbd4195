"""``tessera serve``: migrate (SQLite), make sure keys exist, run uvicorn workers.

Metrics (docs/metrics.md): with more than one worker (or ``PROMETHEUS_MULTIPROC_DIR``
set by the operator) the workers record into a per-run directory that this process
prepares before they start and removes (if it made it) when they have stopped, so
every scrape is the service's total. ``metrics.port`` is served by this supervising
process itself, from that directory or, with one in-process worker, from its registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import ssl
from collections.abc import Iterable, Iterator

import click
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from tessera import httpserver
from tessera.cli._common import built_identity
from tessera.cli._errors import explained, load_settings, masked_url
from tessera.identity.app import IdentityService
from tessera.observability import multiprocess
from tessera.observability.logging import configure_logging
from tessera.observability.scrape import MetricsListener
from tessera.settings import Settings
from tessera.store.migrations import upgrade_database

__all__ = ["serve"]

_log = logging.getLogger("tessera.serve")


async def _bootstrap_keys(settings: Settings) -> None:
    """Create the key ring if there is none, and build the whole identity once: every
    setting, the database, the KEK and the Redis URL fail here, as one line, instead of
    in each worker's startup."""
    identity = await built_identity(settings)  # bootstraps the key ring
    await identity.aclose()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int,
              help="Worker processes (use the number of cores for throughput).")
@click.option("--issuer", default=None,
              help="Issuer URL (default: http://HOST:PORT, https with --tls-cert).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Serve HTTPS with this certificate (PEM, chain included).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The private key of --tls-cert (PEM).")
@click.option("--tls-client-ca", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Ask clients for a certificate issued by this CA (PEM): mutual TLS for "
                   "tls_client_auth and certificate-bound tokens (RFC 8705). Optional per "
                   "connection: browsers and other clients still connect without one.")
def serve(host: str, port: int, workers: int, issuer: str | None, tls_cert: str | None,
          tls_key: str | None, tls_client_ca: str | None) -> None:
    """Run the identity service."""
    if (tls_cert is None) != (tls_key is None) or (tls_client_ca and not tls_cert):
        raise click.UsageError("--tls-cert and --tls-key go together; --tls-client-ca "
                               "needs them")
    os.environ["TESSERA_SERVER__WORKERS"] = str(workers)  # the workers read it too
    if issuer:
        os.environ["TESSERA_ISSUER"] = issuer
    elif "TESSERA_ISSUER" not in os.environ:
        scheme = "https" if tls_cert else "http"
        os.environ["TESSERA_ISSUER"] = f"{scheme}://{host}:{port}"
    settings = load_settings()
    with explained(settings):
        if settings.is_sqlite:
            settings.prepare_data_dir()
            upgrade_database(settings.resolved_database_url)
        asyncio.run(_bootstrap_keys(settings))  # before workers fork: exactly one key set
    configure_logging()
    store = masked_url(settings.resolved_database_url)  # never the password in a log
    click.echo(f"tessera: issuer {settings.issuer}, store {store}, {workers} worker(s)",
               err=True)
    options = {"host": host, "port": port, "access_log": False, "log_level": "warning",
               "server_header": False, "limits": settings.server,
               # open event-feed streams must not hold a shutdown forever: followers
               # reconnect (to another worker) and resume from their cursor
               "timeout_graceful_shutdown": 3,
               # uvicorn's supervisor kills a worker that does not answer its ping within
               # this (5 s by default): on a loaded box a starting worker (imports, key
               # ring) misses that, and workers were killed and respawned forever
               "timeout_worker_healthcheck": 30, **_tls_options(tls_cert, tls_key, tls_client_ca)}
    if settings.metrics.public and settings.metrics.token is None \
            and settings.metrics.port is None:
        click.echo("tessera: warning: /metrics is public (metrics.public)", err=True)
    if workers > 1 or multiprocess.enabled():
        with _multiprocess_metrics():
            registry = multiprocess.collect_registry()
            with _metrics_listener(settings, registry):
                httpserver.run("tessera.identity.app:create_app", factory=True,
                               workers=workers, **options)  # type: ignore[arg-type]
        return
    service = IdentityService(settings)  # one in-process worker: its registry is ours
    with _metrics_listener(settings, _deferred_registry(service)):
        httpserver.run(service, **options)  # type: ignore[arg-type]


def _tls_options(cert: str | None, key: str | None, client_ca: str | None
                 ) -> dict[str, object]:
    """uvicorn's ssl options. With a client CA, a certificate is requested and verified
    against it (``CERT_OPTIONAL``: one without a certificate still connects; a wrong one
    fails the handshake); ``httpserver`` hands the verified one to the app."""
    if cert is None:
        return {}
    options: dict[str, object] = {"ssl_certfile": cert, "ssl_keyfile": key}
    if client_ca is not None:
        options |= {"ssl_ca_certs": client_ca, "ssl_cert_reqs": int(ssl.CERT_OPTIONAL)}
    return options


@contextlib.contextmanager
def _multiprocess_metrics() -> Iterator[None]:
    """A fresh per-run directory for the workers' metric files (the operator's
    ``PROMETHEUS_MULTIPROC_DIR`` emptied, else a temporary one, removed at the end)."""
    path, created = multiprocess.prepare_directory(os.environ.get(multiprocess.ENV))
    click.echo(f"tessera: worker metrics in {path}", err=True)
    try:
        yield
    finally:
        if created:
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _metrics_listener(settings: Settings, registry: CollectorRegistry) -> Iterator[None]:
    config = settings.metrics
    if config.port is None:
        yield
        return
    token = config.token.get_secret_value() if config.token else None
    try:
        listener = MetricsListener(registry, host=config.host, port=config.port,
                                   token=token).start()
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve metrics on {config.host}:{config.port}: {exc.strerror}") from None
    click.echo(f"tessera: metrics on http://{config.host}:{listener.port}/metrics", err=True)
    try:
        yield
    finally:
        listener.close()


class _ServiceMetrics:
    """The in-process worker's metrics, once its lifespan has built the identity."""

    def __init__(self, service: IdentityService) -> None:
        self._service = service

    def collect(self) -> Iterable[Metric]:
        registry = self._service.metrics_registry
        return registry.collect() if registry is not None else []


def _deferred_registry(service: IdentityService) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(_ServiceMetrics(service))
    return registry
