from __future__ import annotations

import pytest

from tessera.verifier import KeySet

from ._support import Minter, PrivateKey, generate


@pytest.fixture(scope="session")
def private_keys() -> dict[str, tuple[str, PrivateKey]]:
    return {
        "rs-1": ("RS256", generate("RS256")),
        "es-1": ("ES256", generate("ES256")),
        "ed-1": ("EdDSA", generate("EdDSA")),
    }


@pytest.fixture
def minter(private_keys: dict[str, tuple[str, PrivateKey]]) -> Minter:
    return Minter(private_keys)


@pytest.fixture
def keys(minter: Minter) -> KeySet:
    return minter.keyset()
