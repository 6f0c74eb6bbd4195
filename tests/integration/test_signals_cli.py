"""The signal CLI verbs against a real SQLite file (issue 12): ``clients create
--backchannel-logout-uri URI [--backchannel-logout-session-required]``, ``clients
backchannel-logout CLIENT [--backchannel-logout-uri URI]``, ``signals ls [--dead]`` and
``signals retry ID``."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from tessera.core.signals import Delivery
from tessera.store.sql import create_store
from tests.integration.test_trust_cli import _quick, data, ok, refused, run  # noqa: F401

NOW = 1_800_000_000.0


def _registration(data: Path, client_id: str) -> list[tuple[str, int]]:  # noqa: F811
    with sqlite3.connect(data / "tessera.db") as db:
        return list(db.execute("SELECT uri, session_required FROM client_logout "
                               "WHERE client_id = ?", (client_id,)))


def test_backchannel_logout_registration(data: Path) -> None:  # noqa: F811
    created = ok(run(data, "clients", "create", "--name", "shop", "--grant",
                     "authorization_code", "--redirect-uri", "https://shop.example/cb",
                     "--backchannel-logout-uri", "https://shop.example/bcl",
                     "--backchannel-logout-session-required"))
    assert created["backchannel_logout_uri"] == "https://shop.example/bcl"
    assert created["backchannel_logout_session_required"] is True
    client_id = created["client_id"]
    assert _registration(data, client_id) == [("https://shop.example/bcl", 1)]
    changed = ok(run(data, "clients", "backchannel-logout", client_id,
                     "--backchannel-logout-uri", "https://shop.example/v2"))
    assert changed["backchannel_logout_uri"] == "https://shop.example/v2"
    assert _registration(data, client_id) == [("https://shop.example/v2", 0)]
    ok(run(data, "clients", "backchannel-logout", client_id))
    assert _registration(data, client_id) == []
    refused(run(data, "clients", "backchannel-logout", client_id,
                "--backchannel-logout-uri", "https://192.168.1.10/bcl"), "private address")
    refused(run(data, "clients", "create", "--name", "svc", "--grant", "client_credentials",
                "--backchannel-logout-uri", "https://svc.example/bcl"), "authorization_code")


def test_dead_letters_are_listed_and_requeued(data: Path) -> None:  # noqa: F811
    ok(run(data, "signals", "ls", "--json"))  # migrates the file

    async def dead_letter() -> int:
        store = create_store(f"sqlite:///{data / 'tessera.db'}")
        try:
            async with store.unit_of_work() as uow:
                await uow.signals.enqueue([Delivery(
                    dedupe="d1", channel="logout", target="c_rp", mode="push", jti="j1",
                    token="t", event="backchannel-logout", tenant_id="default", user_id="u",
                    created_at=NOW, next_at=NOW, expires_at=NOW + 60)])
                [claimed] = await uow.signals.claim(now=NOW, lease=1, limit=1)
                assert claimed.id is not None
                await uow.signals.settle(claimed.id, status="dead", at=NOW, error="HTTP 410")
                return claimed.id
        finally:
            await store.close()

    delivery_id = asyncio.run(dead_letter())
    [row] = ok(run(data, "signals", "ls", "--dead", "--json"))
    assert row["id"] == delivery_id and row["last_error"] == "HTTP 410"
    assert row["receiver"] == "c_rp" and row["jti"] == "j1"
    assert ok(run(data, "signals", "retry", str(delivery_id))) == {"id": delivery_id,
                                                                  "status": "pending"}
    assert ok(run(data, "signals", "ls", "--dead", "--json")) == []
    refused(run(data, "signals", "retry", str(delivery_id)), "no dead letter")
    table = run(data, "signals", "ls")
    assert table.exit_code == 0 and "c_rp" in table.stdout
