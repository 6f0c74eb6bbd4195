from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tessera.verifier import KeySet
from tessera.verifier.service import VerifierService

from ._services import fresh, make_service
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


@pytest.fixture
async def service(minter: Minter) -> AsyncIterator[VerifierService]:
    """A verifier service whose revocation state is fresh: what most SDK tests start
    from (a module that needs another kind defines its own ``service``)."""
    service, _ = make_service(minter)
    fresh(service)
    yield service
    await service.aclose()
