"""System tests: the identity service on a real socket (uvicorn), verifiers following it
over HTTP (SSE), Redis, or the in-process bus."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from tessera.identity.app import build_app
from tessera.identity.compose import Identity
from tessera.identity.feed import EVENTS_SCOPE
from tests.support import AppClient, TesseraDriver


@dataclass
class LiveService:
    identity: Identity
    url: str
    http: httpx.AsyncClient
    driver: TesseraDriver

    async def feed_client(self) -> AppClient:
        """A client allowed to read the revocation feed."""
        return await self.driver.client(scope=EVENTS_SCOPE, audiences=())


@contextlib.asynccontextmanager
async def serve(identity: Identity) -> AsyncIterator[str]:
    config = uvicorn.Config(build_app(identity), host="127.0.0.1", port=0, log_level="error",
                            lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def live(identity: Identity) -> AsyncIterator[LiveService]:
    async with serve(identity) as url, httpx.AsyncClient(base_url=url) as http:
        yield LiveService(identity, url, http, TesseraDriver(identity, http))
