"""The embedded store's files are private: the data directory is created ``0700`` and the
SQLite database with its WAL and shared-memory files ``0600``, whatever the umask, by the
commands an operator runs (``tessera db upgrade``) and by the server's store."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

from tessera.core.users import DEFAULT_TENANT
from tessera.store.sql import create_store
from tessera.store.sql.engine import secure_sqlite_files
from tests.conftest import KEK
from tests.system._procs import TESSERA, base_env


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_db_upgrade_creates_a_private_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "data"
    env = base_env() | {"TESSERA_DATA_DIR": str(data), "TESSERA_KEYS__ENCRYPTION_KEY": KEK}
    done = subprocess.run([TESSERA, "db", "upgrade"], env=env, cwd=tmp_path, timeout=120,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert mode(data) == 0o700
    assert mode(data / "tessera.db") == 0o600
    for leftover in ("tessera.db-wal", "tessera.db-shm"):
        if (data / leftover).exists():
            assert mode(data / leftover) == 0o600


async def test_the_wal_and_shm_files_are_private_while_in_use(
        tmp_path: Path, sqlite_template: Path) -> None:
    old = os.umask(0o022)  # what most systems run with: new files 0644 unless told
    try:
        database = tmp_path / "data" / "tessera.db"
        database.parent.mkdir(mode=0o700)
        shutil.copy(sqlite_template, database)
        os.chmod(database, 0o644)
        store = create_store(f"sqlite:///{database}")
        try:
            async with store.unit_of_work(read_only=True) as uow:
                assert await uow.users.by_username(DEFAULT_TENANT, "nobody") is None
            wal, shm = (database.with_name(database.name + s) for s in ("-wal", "-shm"))
            assert wal.exists() and shm.exists()
            assert [mode(p) for p in (database, wal, shm)] == [0o600] * 3
            assert mode(database.parent) == 0o700
        finally:
            await store.close()
    finally:
        os.umask(old)


def test_an_existing_readable_database_and_wal_are_tightened(tmp_path: Path) -> None:
    database = tmp_path / "tessera.db"
    for path in (database, tmp_path / "tessera.db-wal"):
        path.touch()
        os.chmod(path, 0o644)
    secure_sqlite_files(f"sqlite:///{database}")
    assert mode(database) == mode(tmp_path / "tessera.db-wal") == 0o600
    secure_sqlite_files("sqlite:///:memory:")  # not a file: nothing to do
