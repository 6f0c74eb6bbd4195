"""Tenants: everything (users, clients, sessions, refresh families, revocation events)
belongs to exactly one. A suspended tenant has had every session revoked and gets no new
login or grant until it is resumed."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Tenant", "tenant_of"]


@dataclass(frozen=True, slots=True)
class Tenant:
    tenant_id: str
    name: str
    created_at: float
    suspended_at: float | None = None

    @property
    def active(self) -> bool:
        return self.suspended_at is None


def tenant_of(tenant_id: str | None, default: str) -> str:
    """A client registered without a tenant belongs to the default tenant."""
    return tenant_id or default
