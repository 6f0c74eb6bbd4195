"""tessera._extras: an extra's distributions come from the installed metadata (extras of
Tessera itself followed), and a missing one is one line naming the extra."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import metadata

import pytest

from tessera import _extras
from tessera._extras import MissingExtra, missing, require

REQUIRES = [
    "cryptography>=42",
    'redis>=5.0; extra == "verifier"',
    "hiredis>=2.0 ; extra == 'verifier'",
    'SQLAlchemy[asyncio]>=2.0.30; extra == "server"',
    'argon2-cffi>=23.1; extra == "server"',
    'tessera[server,verifier]; extra == "dev"',
    'pytest>=8.0; extra == "dev"',
]


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Pretend Tessera declares REQUIRES and only the names in the set are installed."""
    present: set[str] = set()

    def requires(name: str) -> list[str]:
        assert name == "tessera"
        return REQUIRES

    def distribution(name: str) -> object:
        if name not in present:
            raise metadata.PackageNotFoundError(name)
        return object()

    monkeypatch.setattr(_extras.metadata, "requires", requires)
    monkeypatch.setattr(_extras.metadata, "distribution", distribution)
    missing.cache_clear()
    yield present
    missing.cache_clear()


def test_an_extra_lists_its_own_distributions(installed: set[str]) -> None:
    assert missing("server") == ("SQLAlchemy", "argon2-cffi")
    assert missing("verifier") == ("redis", "hiredis")
    assert missing("tracing") == ()  # an extra Tessera does not declare needs nothing


def test_extras_of_tessera_itself_are_followed(installed: set[str]) -> None:
    installed.update({"SQLAlchemy", "argon2-cffi", "redis"})
    assert missing("dev") == ("pytest", "hiredis")


def test_require_names_the_extra_in_one_line(installed: set[str]) -> None:
    installed.add("SQLAlchemy")
    with pytest.raises(MissingExtra) as raised:
        require("server", "the identity service")
    assert str(raised.value) == ("the identity service needs the 'server' extra: "
                                 "pip install 'tessera[server]'")
    assert raised.value.absent == ("argon2-cffi",)
    assert isinstance(raised.value, ImportError)
    installed.add("argon2-cffi")
    missing.cache_clear()
    require("server", "the identity service")


def test_a_source_tree_without_metadata_checks_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def requires(name: str) -> list[str]:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(_extras.metadata, "requires", requires)
    missing.cache_clear()
    try:
        assert missing("server") == ()
    finally:
        missing.cache_clear()


def test_this_install_has_every_extra_the_suite_needs() -> None:
    assert missing("dev") == ()
