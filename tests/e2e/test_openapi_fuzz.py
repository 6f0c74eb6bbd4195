"""Schemathesis against the identity service on a real socket, driven by ``/openapi.json``.

Every operation of the document gets its examples, coverage and fuzzing phases with
every check schemathesis has (no server error, status codes, content types and bodies as
documented, auth not ignored, bad input refused, ...). Requests carry valid credentials
for the operation (a confidential client for client authentication, an admin access token
for bearer routes, the scrape token for ``/metrics``) so the fuzzing reaches past
authentication; the ``ignored_auth`` check sends them without.

Bounded in time: ``MAX_EXAMPLES`` per operation (the coverage phase adds its own
deterministic cases), so the whole module takes about 25 s on this machine.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings

from tessera.application import admin
from tessera.core.clients import KNOWN_GRANTS
from tessera.core.clock import SystemClock
from tessera.core.users import DEFAULT_TENANT
from tessera.identity.app import ADMIN_SCOPE, build_app
from tessera.identity.feed import EVENTS_SCOPE
from tessera.identity.openapi import OPENAPI_PATH, DocumentContext, build_document
from tessera.store.sql import create_store
from tests.conftest import ISSUER, METRICS_TOKEN, make_identity, make_settings

MAX_EXAMPLES = int(os.environ.get("TESSERA_FUZZ_EXAMPLES", "8"))  # per operation
"""A deeper run: ``TESSERA_FUZZ_EXAMPLES=500 pytest tests/e2e/test_openapi_fuzz.py``."""
ISSUER_AUDIENCE = "https://api.example"

# RFC 8935 push delivery (/federation/{idp_id}/ssf/push): the body is one compact JWS,
# sent as text under its own media type
schemathesis.serializer.alias("application/secevent+jwt", "text/plain")


@dataclass
class Live:
    url: str
    headers: dict[str, dict[str, str]]
    """Authorization header per security scheme name."""


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


class _Server(threading.Thread):
    """The identity service in its own event loop on a free port, seeded in that loop."""

    def __init__(self, data_dir: Path, template: Path) -> None:
        super().__init__(name="identity-under-fuzz", daemon=True)
        self._data_dir = data_dir
        self._template = template
        self.ready = threading.Event()
        self.live: Live | None = None
        self.error: BaseException | None = None
        self._server: uvicorn.Server | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        self._data_dir.mkdir(parents=True, exist_ok=True)
        (self._data_dir / "tessera.db").write_bytes(self._template.read_bytes())
        # SSE reads end after 2 events. Schemathesis sends wrong credentials to every
        # client-authenticated route (token, introspection, revocation, the four
        # /revocations routes): more than the default 30 failures a minute, so the
        # throttle (tested on its own elsewhere) would answer 429 instead of 401.
        settings_ = make_settings(self._data_dir, bus={"heartbeat": 0.1},
                                  security={"client_auth_failures_per_minute": 100_000})
        store = create_store(settings_.resolved_database_url)
        identity = await make_identity(settings_, store, SystemClock())  # type: ignore[arg-type]
        client, secret = await admin.create_client(
            identity.admin, name="fuzz", grants=("authorization_code", "refresh_token",
                                           "client_credentials"),
            redirect_uris=("https://app.example/cb",),
            scope=f"openid api:read {EVENTS_SCOPE} {ADMIN_SCOPE}",
            audiences=(settings_.issuer, ISSUER_AUDIENCE), tenant_id=DEFAULT_TENANT)
        await admin.create_user(identity.admin, username="root", password="correct horse battery")
        assert secret is not None
        config = uvicorn.Config(build_app(identity), host="127.0.0.1", port=0,
                                log_level="error", lifespan="on")
        self._server = uvicorn.Server(config)
        task = asyncio.get_running_loop().create_task(self._server.serve())
        while not self._server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url) as http:
            token = (await http.post("/token", auth=(client.client_id, secret), data={
                "grant_type": "client_credentials", "scope": f"openid {ADMIN_SCOPE}",
                "resource": settings_.issuer})).json()["access_token"]
        self.live = Live(url, {
            "clientBasic": {"Authorization": _basic(client.client_id, secret)},
            "bearer": {"Authorization": f"Bearer {token}"},
            "metricsToken": {"Authorization": f"Bearer {METRICS_TOKEN}"},
        })
        self.ready.set()
        await task
        await store.close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self.join(15)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Live]:
    server = _Server(tmp_path_factory.mktemp("fuzz"), sqlite_template)
    server.start()
    assert server.ready.wait(60), "the identity service did not start"
    if server.error is not None:
        raise server.error
    assert server.live is not None
    try:
        yield server.live
    finally:
        server.stop()


DOCUMENT = build_document(DocumentContext(issuer=ISSUER, grant_types=tuple(sorted(KNOWN_GRANTS)),
                                          metrics_token=True))
"""What the server under test serves (checked below); built here because the test
functions are generated at import time, before any server runs."""
schema = schemathesis.openapi.from_dict(copy.deepcopy(DOCUMENT))  # it resolves in place


def test_the_fuzzed_document_is_the_served_one(live: Live) -> None:
    assert httpx.get(live.url + OPENAPI_PATH).json() == DOCUMENT


def _credentials(case: Any, live: Live) -> dict[str, str]:
    """The header of the operation's first security scheme (none for open routes)."""
    for requirement in case.operation.definition.raw.get("security", []):
        for name in requirement:
            return live.headers[name]
    return {}


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_error_and_every_answer_as_documented(case: Any, live: Live) -> None:
    case.call_and_validate(base_url=live.url, headers=_credentials(case, live), timeout=5)
