"""The public names of ``tessera.bff``, pinned (STYLE §13)."""

from __future__ import annotations

import tessera.bff


def test_exported_names() -> None:
    assert tessera.bff.__all__ == [
        "CSRF_HEADER", "LOGIN_COOKIE", "SESSION_COOKIE", "BffSettings", "MemoryVault",
        "RedisVault", "Vault", "build_app", "check_csrf", "create_bff", "derive_key"]
    for name in tessera.bff.__all__:
        assert hasattr(tessera.bff, name), name
