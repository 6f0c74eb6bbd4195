"""The BFF's session store: one contract for every adapter (memory, Redis), and the
sealing on top (AES-256-GCM, the storage key as associated data)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from tessera.bff.vault import (
    BffSession,
    LoginTransaction,
    MemoryVault,
    RedisVault,
    SealedVault,
    Vault,
    VaultUnavailable,
)
from tessera.keys import Sealer
from tests.conftest import REDIS_URL, require_service
from tests.polling import eventually


@pytest.fixture(params=["memory", "redis"])
async def vault(request: pytest.FixtureRequest) -> AsyncIterator[Vault]:
    if request.param == "memory":
        memory = MemoryVault()
        yield memory
        await memory.aclose()
        return
    url = require_service(REDIS_URL, "redis")
    redis = RedisVault(url, prefix=f"tessera:bff-test:{uuid.uuid4().hex}:")
    yield redis
    await redis.aclose()


async def test_put_get_delete(vault: Vault) -> None:
    assert await vault.get("a") is None
    await vault.put("a", b"one", 60)
    assert await vault.get("a") == b"one"
    await vault.put("a", b"two", 60)
    assert await vault.get("a") == b"two"
    await vault.delete("a")
    await vault.delete("a")  # absent is fine
    assert await vault.get("a") is None


async def test_values_expire(vault: Vault) -> None:
    await vault.put("short", b"x", 0.05)

    async def expired() -> bool:
        return await vault.get("short") is None

    await eventually(expired, interval=0.02, what="the value expired")


async def test_take_is_single_use_under_concurrency(vault: Vault) -> None:
    await vault.put("login", b"tx", 60)
    results = await asyncio.gather(*(vault.take("login") for _ in range(10)))
    assert results.count(b"tx") == 1 and results.count(None) == 9


def _session(now: float) -> BffSession:
    return BffSession(sub="u1", sid="s1", id_token="idt", access_token="secret-access-token",
                      refresh_token="secret-refresh-token", token_type="Bearer",
                      expires_at=now + 300, scope="openid", claims={"sub": "u1"},
                      created_at=now, absolute_expiry=now + 3600)


async def test_sealed_records_hide_tokens_and_handles() -> None:
    memory = MemoryVault()
    sealed = SealedVault(memory, Sealer.from_b64(Sealer.new_kek_b64()))
    await sealed.put_session("handle-1", _session(1000.0), 60)
    raw = b"".join(v for v, _ in memory._items.values())
    assert b"secret-access-token" not in raw and b"secret-refresh-token" not in raw
    assert not any("handle-1" in key for key in memory._items)
    got = await sealed.get_session("handle-1")
    assert got is not None and got.access_token == "secret-access-token"
    assert await sealed.get_session("handle-2") is None


async def test_a_value_moved_to_another_key_or_another_secret_does_not_open() -> None:
    memory = MemoryVault()
    sealed = SealedVault(memory, Sealer.from_b64(Sealer.new_kek_b64()))
    await sealed.put_session("a", _session(1000.0), 60)
    value = await memory.get(SealedVault.session_key("a"))
    assert value is not None
    await memory.put(SealedVault.session_key("b"), value, 60)
    assert await sealed.get_session("b") is None  # associated data is the key
    other = SealedVault(memory, Sealer.from_b64(Sealer.new_kek_b64()))
    assert await other.get_session("a") is None  # another secret_key
    await memory.put(SealedVault.session_key("c"), b"v1.garbage", 60)
    assert await sealed.get_session("c") is None


async def test_login_transactions_are_taken_once() -> None:
    sealed = SealedVault(MemoryVault(), Sealer.from_b64(Sealer.new_kek_b64()))
    login = LoginTransaction(state="s", nonce="n", code_verifier="v", return_to="/",
                             created_at=1.0)
    await sealed.put_login("h", login, 60)
    assert await sealed.take_login("h") == login
    assert await sealed.take_login("h") is None


async def test_unreachable_redis_is_vault_unavailable() -> None:
    redis = RedisVault("redis://127.0.0.1:1/0")
    with pytest.raises(VaultUnavailable):
        await redis.get("x")
    await redis.aclose()
