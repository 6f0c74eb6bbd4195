"""Readiness of the identity service, for probes and load balancers.

==============  ==================================================================
route           answers
==============  ==================================================================
``/healthz``    200 while the process answers (liveness: restart it if not)
``/readyz``     200 ``{"status": "ready"}`` when the database answers a query within
                ``READY_TIMEOUT`` seconds, else 503 ``{"status": "unavailable",
                "checks": {"database": "unreachable" | "timeout"}}`` (take this
                instance out of rotation; do not restart it)
==============  ==================================================================

The probe reads the outbox head (one indexed query on a migrated table), so a database
that is up but not migrated is not ready either. The answer never names hosts, users or
driver messages: the endpoint is unauthenticated.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tessera.store.ports import Store, StoreError

__all__ = ["READY_TIMEOUT", "check_database", "readiness_endpoint"]

READY_TIMEOUT: Final = 2.0
"""Seconds the database has to answer the readiness query (below a probe's timeout)."""

_log = logging.getLogger("tessera.identity")


async def check_database(store: Store, *, within: float = READY_TIMEOUT) -> str:
    """``"ok"``, ``"unreachable"`` (a ``StoreError``) or ``"timeout"`` (no answer
    ``within`` seconds)."""
    async def probe() -> None:
        async with store.unit_of_work(read_only=True) as uow:
            await uow.revocations.last_seq()

    try:
        await asyncio.wait_for(probe(), within)
    except TimeoutError:
        return "timeout"
    except StoreError as exc:
        _log.warning("readiness: database check failed: %s", exc)
        return "unreachable"
    return "ok"


def readiness_endpoint(store: Store, *, within: float = READY_TIMEOUT
                       ) -> Callable[[Request], Awaitable[Response]]:
    async def readyz(_: Request) -> Response:
        database = await check_database(store, within=within)
        ready = database == "ok"
        return JSONResponse({"status": "ready" if ready else "unavailable",
                             "checks": {"database": database}},
                            status_code=200 if ready else 503,
                            headers={"cache-control": "no-store"})

    return readyz
