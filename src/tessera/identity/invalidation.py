"""Per-process caches of clients and tenant suspension (read on every client
authentication) forget an entry as soon as this process's bus delivers the
``client.revoked`` or ``tenant.revoked`` event another process (the CLI, another worker)
committed with the change: a disabled client or a suspended tenant is refused within the
outbox relay's poll interval, not the cache's life."""

from __future__ import annotations

from tessera.bus import BusGap
from tessera.core.revocation import RevocationKind
from tessera.identity.compose import Identity

__all__ = ["forget_on_revocation"]


async def forget_on_revocation(identity: Identity) -> None:
    """Runs until cancelled (the app's lifespan)."""
    while True:
        try:
            async for batch in identity.bus.follow(await identity.bus.last_seq()):
                for event in batch:
                    if event.kind == RevocationKind.CLIENT_REVOKED:
                        identity.clients.forget(event.key)
                    elif event.kind == RevocationKind.TENANT_REVOKED:
                        identity.tenants.forget(event.key)
        except BusGap:
            identity.tenants.forget()  # events were missed: trust nothing cached
            identity.clients.clear()
            continue
