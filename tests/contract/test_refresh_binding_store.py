"""Store contract for DPoP-bound refresh families (RFC 9449 §5): the key thumbprint a
public client's family is bound to survives the round trip on every store, and unbound
families stay unbound."""

from __future__ import annotations

from dataclasses import replace

from tessera.store.ports import Store
from tests.contract.conftest import a_family, a_session, a_user

JKT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


async def test_a_familys_dpop_key_round_trips(any_store: Store) -> None:
    user = a_user()
    session = a_session(user)
    bound = replace(a_family(session), jkt=JKT)
    unbound = a_family(session)
    async with any_store.unit_of_work() as uow:
        await uow.users.add(user)
        await uow.sessions.add(session, browser_handle_hash=None)
        await uow.refresh.add_family(bound)
        await uow.refresh.add_family(unbound)
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.refresh.get_family(bound.family_id) == bound
        assert (await uow.refresh.get_family(unbound.family_id)).jkt is None  # type: ignore[union-attr]
        families = {f.family_id: f.jkt for f in await uow.refresh.families_for_session(
            session.sid)}
    assert families == {bound.family_id: JKT, unbound.family_id: None}
