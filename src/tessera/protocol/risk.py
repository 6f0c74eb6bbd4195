"""Risk signals: what the token and login paths tell a risk observer, and the one thing
it can make them do (refuse a refresh until the user signs in again: ``step_up``).

The observer (``identity.signals.risk.RiskEngine``) records the client address (truncated
per the privacy setting) and user agent, runs the detections and applies the tenant's
policy; this module only names the port so protocol code stays framework- and
storage-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tessera.application.transaction import Transaction
from tessera.core.refresh import RefreshFamily
from tessera.core.signals import RiskObservation
from tessera.protocol.http import OAuthRequest
from tessera.store.ports import RefreshRead, RefreshSnapshot, UnitOfWork

__all__ = ["RequestContext", "RiskObserver", "context_of"]


@dataclass(frozen=True, slots=True)
class RequestContext:
    address: str | None
    """The client's address as the server saw it (not yet truncated)."""
    user_agent: str | None


def context_of(request: OAuthRequest) -> RequestContext:
    agent = request.headers.get("user-agent")
    return RequestContext(request.client_host, agent[:300] if agent else None)


class RiskObserver(Protocol):
    async def step_up_required(self, uow: UnitOfWork, family_id: str) -> bool:
        """True if a detection asked this family to re-authenticate."""

    async def refreshed(self, tx: Transaction, family: RefreshFamily,
                        ctx: RequestContext) -> None:
        """A successful rotation, in its transaction."""

    def refresh_read(self, now: float) -> RefreshRead:
        """What the refresh hot path's one read must fetch for ``quiet_refresh``."""

    def quiet_refresh(self, family: RefreshFamily, ctx: RequestContext, now: float,
                      snapshot: RefreshSnapshot) -> RiskObservation | None:
        """The observation a rotation records when, judged on ``snapshot``, it neither
        needs a step-up nor raises a detection not raised yet — what ``step_up_required``
        and ``refreshed`` would then do is exactly to record it. None: the rotation must
        take the transactional path, which calls those two."""

    async def reused(self, tx: Transaction, family: RefreshFamily,
                     ctx: RequestContext) -> None:
        """A rotated token presented again (the family is being revoked), in that
        transaction."""

    async def refused(self, token_hash: str, ctx: RequestContext) -> None:
        """A refresh was refused; if the token is a known one of a revoked family or an
        already rotated one, that is another reuse attempt (own transaction)."""

    async def login(self, *, tenant_id: str, user_id: str | None, account_hash: str,
                    ok: bool, ctx: RequestContext) -> None:
        """A password login attempt (own transaction)."""
