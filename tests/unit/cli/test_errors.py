"""``tessera.cli._errors.explain``: configuration failures become one line each; anything
else (a bug) is not explained, so it keeps its traceback."""

from __future__ import annotations

import errno

import click
import pytest
from click.testing import CliRunner

from tessera.cli._errors import OperatorErrors, explain, masked_url
from tessera.keys.errors import UnsealFailed
from tessera.store.ports import StoreError

URL = "postgresql://tessera:hunter2@db.internal:5432/tessera"


def _wrapped(cause: BaseException) -> StoreError:
    try:
        try:
            raise cause
        except BaseException as exc:
            raise StoreError("database unavailable") from exc
    except StoreError as store_error:
        return store_error


@pytest.mark.parametrize(("cause", "reason"), [
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "ConnectionRefusedError"),
    (TimeoutError(), "TimeoutError"),
    (OSError(errno.EHOSTUNREACH, "No route to host"), "No route to host"),
])
def test_an_unreachable_database_names_the_url_with_the_password_masked(
        cause: BaseException, reason: str) -> None:
    (line,) = explain(_wrapped(cause), database_url=URL) or []
    assert line == ("TESSERA_DATABASE_URL: cannot reach the database at "
                    f"postgresql://tessera:***@db.internal:5432/tessera ({reason}); check the "
                    "URL and that the server is up")


def test_a_wrong_kek_and_a_file_problem() -> None:
    assert explain(UnsealFailed("x")) == [
        "TESSERA_KEYS__ENCRYPTION_KEY: it does not unseal the stored signing keys; set the "
        "key they were sealed with (every instance must use the same one)"]
    (line,) = explain(PermissionError(errno.EACCES, "Permission denied", "/srv/data")) or []
    assert line.startswith("TESSERA_DATA_DIR: cannot use /srv/data (Permission denied)")


def test_a_bug_is_not_explained_and_keeps_its_traceback() -> None:
    assert explain(RuntimeError("boom")) is None
    assert explain(KeyError("x")) is None

    @click.group(cls=OperatorErrors)
    def group() -> None: ...

    @group.command()
    def broken() -> None:
        raise RuntimeError("boom")

    result = CliRunner().invoke(group, ["broken"])
    assert isinstance(result.exception, RuntimeError)  # not turned into exit 2


def test_masked_url() -> None:
    assert masked_url(URL) == "postgresql://tessera:***@db.internal:5432/tessera"
    assert masked_url("sqlite:///data/tessera.db") == "sqlite:///data/tessera.db"
    assert masked_url("::not a url::") == "<unparseable URL>"
