"""End-to-end fixtures, tuned so the suite stays fast while running the real thing:

- the SQLite template is migrated *and* holds a bootstrapped key ring (sealed under the
  session's KEK), so each test copies ready keys instead of generating two RSA keys (key
  generation is still exercised by the rotation flows);
- parsing a private key PEM (RSA validation costs ~35 ms) is memoised by its bytes: every
  test unseals the same template keys. Unsealing (AES-GCM) still runs every time.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tessera import jose
from tessera.core.clock import FixedClock
from tessera.identity.compose import key_manager_for
from tessera.keys import ring as key_ring
from tessera.store.migrations import upgrade_database
from tessera.store.sql import create_store
from tests.conftest import make_settings


async def _bootstrap_keys(path: Path) -> None:
    store = create_store(f"sqlite:///{path}")
    try:
        settings = make_settings(path.parent)
        # an hour back, so no test clock ever sees a key created in its future
        clock = FixedClock(time.time() - 3600)
        assert await key_manager_for(settings, store, clock).bootstrap()
    finally:
        await store.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("e2e-template") / "tessera.db"
    upgrade_database(f"sqlite:///{path}")
    asyncio.run(_bootstrap_keys(path))
    return path


@pytest.fixture(scope="session", autouse=True)
def _memoised_key_parsing() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        memoised = functools.lru_cache(maxsize=256)(jose.load_private_pem)
        patch.setattr(jose, "load_private_pem", memoised)
        patch.setattr(key_ring.jose, "load_private_pem", memoised)
        yield
from tests.e2e.signals_world import world  # noqa: E402,F401  (issue 12: outbound signals)
