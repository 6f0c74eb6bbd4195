"""Store contract for migration 0010, on every store: clients' authentication method,
access-token format and key material round-trip; reference tokens are found by hash only
and pruned after expiry; a client assertion ``jti`` is usable once until it expires, and
of concurrent callers exactly one wins."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tessera.store.ports import ReferenceToken, Store, UnitOfWork
from tests.contract.conftest import NOW, a_client, uid
from tests.contract.test_store_races import race


async def test_client_auth_settings_round_trip(any_store: Store) -> None:
    plain = a_client()
    keyed = a_client(secret_hash=None, auth_method="private_key_jwt",
                     access_token_format="reference", jwks='{"keys":[]}')
    workload = a_client(secret_hash=None, auth_method="workload_identity",
                        workload_issuer="https://spire.example",
                        workload_subject="spiffe://example.org/orders",
                        workload_jwks_uri="https://spire.example/keys")
    mtls = a_client(secret_hash=None, auth_method="tls_client_auth",
                    tls_subject_dn="CN=orders,O=Example")
    async with any_store.unit_of_work() as uow:
        for client in (plain, keyed, workload, mtls):
            await uow.clients.add(client)
    async with any_store.unit_of_work(read_only=True) as uow:
        for client in (plain, keyed, workload, mtls):
            assert await uow.clients.get(client.client_id) == client
    assert plain.token_endpoint_auth_method == "client_secret_basic" and plain.uses_secret
    assert keyed.token_endpoint_auth_method == "private_key_jwt" and not keyed.uses_secret


async def test_reference_tokens_by_hash_and_pruned(any_store: Store) -> None:
    live = ReferenceToken(token_hash=uid("h").ljust(64, "0")[:64], jti=uid("jti"),
                          client_id="c", tenant_id="default", sid=uid("sid"),
                          claims={"sub": "u", "aud": ["https://api.example"], "exp": NOW + 60},
                          expires_at=NOW + 60)
    dead = ReferenceToken(token_hash=uid("h").ljust(64, "1")[:64], jti=uid("jti"),
                          client_id="c", tenant_id=None, sid=None, claims={"exp": NOW - 60},
                          expires_at=NOW - 60)
    async with any_store.unit_of_work() as uow:
        await uow.reference_tokens.add(live)
        await uow.reference_tokens.add(dead)
    async with any_store.unit_of_work() as uow:
        assert await uow.reference_tokens.get(live.token_hash) == live
        assert await uow.reference_tokens.get(uid("nope")) is None
        assert await uow.reference_tokens.prune(NOW) >= 1
        assert await uow.reference_tokens.get(dead.token_hash) is None
        assert await uow.reference_tokens.get(live.token_hash) == live


async def test_an_assertion_jti_is_usable_once_until_it_expires(any_store: Store) -> None:
    jti = uid("jti")
    async with any_store.unit_of_work() as uow:
        assert await uow.assertion_jtis.use("c1", jti, expires_at=NOW + 60, now=NOW)
        assert not await uow.assertion_jtis.use("c1", jti, expires_at=NOW + 60, now=NOW + 1)
        assert await uow.assertion_jtis.use("c2", jti, expires_at=NOW + 60, now=NOW)  # per client
    async with any_store.unit_of_work() as uow:  # expired: the jti protects nothing more
        assert await uow.assertion_jtis.use("c1", jti, expires_at=NOW + 200, now=NOW + 120)
        assert await uow.assertion_jtis.prune(NOW + 1000) >= 2


async def test_exactly_one_concurrent_assertion_wins(any_store: Store) -> None:
    jti = uid("jti")

    async def use(uow: UnitOfWork, reads_done: Callable[[], Awaitable[None]]) -> bool:
        await reads_done()
        return await uow.assertion_jtis.use("c", jti, expires_at=NOW + 60, now=NOW)

    assert sorted(await race(any_store, use)) == [False] * 7 + [True]
