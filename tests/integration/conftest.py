"""Integration rigs: a wired identity service on a real store, driven over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from tessera.core.clock import FixedClock
from tessera.core.secrets import token_hash
from tessera.identity.app import build_app
from tessera.identity.compose import Identity
from tessera.store.ports import Store
from tessera.store.sql import SqlStore
from tessera.store.sql.schema import refresh_families, refresh_tokens, sessions
from tests.conftest import ISSUER, make_identity, make_settings
from tests.support import AppClient, TesseraDriver


@dataclass
class Instance:
    """One identity service process: its own store (engine, pool) and HTTP client."""

    identity: Identity
    driver: TesseraDriver


@asynccontextmanager
async def running(store: Store, clock: FixedClock, tmp_path: Path,
                  **settings: Any) -> AsyncIterator[Instance]:
    identity = await make_identity(make_settings(tmp_path, **settings), store,  # type: ignore[arg-type]
                                   clock)
    transport = httpx.ASGITransport(app=build_app(identity))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        try:
            yield Instance(identity, TesseraDriver(identity, http))
        finally:
            await identity.audit.aclose()


async def logged_in(driver: TesseraDriver) -> tuple[AppClient, dict[str, Any]]:
    """A confidential web client and the token response of a fresh login."""
    app = await driver.web_client()
    await driver.user()
    return app, await driver.login_tokens(app)


async def refresh(driver: TesseraDriver, app: AppClient, refresh_token: str) -> httpx.Response:
    return await driver.token(app, grant_type="refresh_token", refresh_token=refresh_token)


@dataclass(frozen=True)
class FamilyState:
    family_id: str
    generations: dict[int, int]
    """generation → number of refresh token rows."""
    family_revoke_reason: str | None
    session_revoke_reason: str | None


async def family_state(store: SqlStore, refresh_token: str) -> FamilyState:
    """Read the family of ``refresh_token`` straight from the tables."""
    async with store.engine.connect() as conn:
        family_id = (await conn.execute(select(refresh_tokens.c.family_id).where(
            refresh_tokens.c.token_hash == token_hash(refresh_token)))).scalar_one()
        counts = await conn.execute(
            select(refresh_tokens.c.generation, func.count())
            .where(refresh_tokens.c.family_id == family_id)
            .group_by(refresh_tokens.c.generation))
        family = (await conn.execute(select(refresh_families).where(
            refresh_families.c.family_id == family_id))).mappings().one()
        session = (await conn.execute(select(sessions.c.revoke_reason).where(
            sessions.c.sid == family["sid"]))).scalar_one()
    return FamilyState(family_id, {int(g): int(n) for g, n in counts.all()},
                       family["revoke_reason"], session)

