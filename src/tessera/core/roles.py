"""Roles a user holds on the server, and the privileged scopes each one entitles.

Privilege is never a property of a client: a client's registered scopes only *cap* what
a user-delegated token may carry. Every scope in the ``tessera:`` namespace is
privileged; a user is entitled to such a scope only through a role, and to every other
scope (the applications' own, ``openid``) by being a user at all::

    role             reach            entitles
    platform-admin   every tenant     tessera:admin  tessera:support  tessera:events
    tenant-admin     own tenant       tessera:admin  tessera:support
    impersonator     own tenant       tessera:impersonate
    support          own tenant       tessera:support      (read-only)

A user belongs to exactly one tenant, so a tenant role is held in that tenant;
``platform-admin`` is the one role that reaches across tenants.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ADMIN_SCOPE",
    "EVENTS_SCOPE",
    "IMPERSONATE_SCOPE",
    "IMPERSONATOR",
    "PLATFORM_ADMIN",
    "PRIVILEGED_PREFIX",
    "ROLES",
    "ROLE_SCOPES",
    "SUPPORT",
    "SUPPORT_SCOPE",
    "TENANT_ADMIN",
    "Reach",
    "entitled",
    "is_privileged",
    "narrow_to_entitlement",
]

TENANT_ADMIN: Final = "tenant-admin"
IMPERSONATOR: Final = "impersonator"
SUPPORT: Final = "support"
PLATFORM_ADMIN: Final = "platform-admin"
ROLES: Final = frozenset({TENANT_ADMIN, IMPERSONATOR, SUPPORT, PLATFORM_ADMIN})

PRIVILEGED_PREFIX: Final = "tessera:"
ADMIN_SCOPE: Final = "tessera:admin"
"""The admin API (revoke, bump sessions) inside the holder's reach."""
IMPERSONATE_SCOPE: Final = "tessera:impersonate"
"""May act as another user of the tenant (token exchange, ``act``)."""
SUPPORT_SCOPE: Final = "tessera:support"
"""Read-only views of sessions and the audit trail."""
EVENTS_SCOPE: Final = "tessera:events"
"""The revocation feed (every tenant's revocation identifiers)."""

ROLE_SCOPES: Final[dict[str, frozenset[str]]] = {
    PLATFORM_ADMIN: frozenset({ADMIN_SCOPE, SUPPORT_SCOPE, EVENTS_SCOPE}),
    TENANT_ADMIN: frozenset({ADMIN_SCOPE, SUPPORT_SCOPE}),
    IMPERSONATOR: frozenset({IMPERSONATE_SCOPE}),
    SUPPORT: frozenset({SUPPORT_SCOPE}),
}


def is_privileged(scope: str) -> bool:
    return scope.startswith(PRIVILEGED_PREFIX)


def entitled(roles: Iterable[str]) -> frozenset[str]:
    """The privileged scopes ``roles`` entitle (unknown role names entitle nothing)."""
    scopes: set[str] = set()
    for role in roles:
        scopes |= ROLE_SCOPES.get(role, frozenset())
    return frozenset(scopes)


def narrow_to_entitlement(scopes: frozenset[str], roles: Iterable[str]) -> frozenset[str]:
    """``scopes`` without the privileged ones ``roles`` do not entitle."""
    allowed = entitled(roles)
    return frozenset(s for s in scopes if not is_privileged(s) or s in allowed)


@dataclass(frozen=True, slots=True)
class Reach:
    """Who acts (a user id, or a client id for a service's own token), from which
    tenant, with which roles: what an administrative caller may see and touch. Built from
    the store at every use, never from a token's claims alone."""

    actor: str
    tenant_id: str
    roles: frozenset[str]

    @property
    def platform(self) -> bool:
        """A platform administrator reaches every tenant."""
        return PLATFORM_ADMIN in self.roles

    def covers(self, tenant_id: str) -> bool:
        return self.platform or tenant_id == self.tenant_id

    def may(self, scope: str) -> bool:
        """Whether the roles entitle the privileged ``scope``."""
        return scope in entitled(self.roles)
