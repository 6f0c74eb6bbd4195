"""Audited admin impersonation, a token exchange (RFC 8693 §2.1) whose subject is a user.

The request names the user (``subject_token_type`` = ``TOKEN_TYPE_USER_ID``,
``subject_token`` = the user id) and the admin acting for them (``actor_token``: the
admin's access token, issued to or addressed to the exchanging client). The admin's
token must be active, carry the impersonation scope, an ``acr`` at least ``min_acr``
(``core.acr`` ordering) and an ``auth_time`` no older than ``max_auth_age``; the admin
must hold the ``impersonator`` role *now* (``core.roles``); the user must be in good
standing and in the admin's tenant (``standing``).

Each impersonation opens a session of its own for the user (``amr`` starts with
``imp``, ``user_agent`` names the admin), audited as ``session.impersonated`` with both
identities: it shows in the user's session list and revoking it ends the impersonation
alone. It is tied to the admin's session and token (``actor_sid``, ``actor_jti``):
revoking or bumping the admin's session, or revoking the admin's token, ends it, and its
token never expires after the admin's. Its scopes are capped by the admin's token and by
both users' role entitlements. The issued token names the admin in ``act`` (§4.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tessera.application.ports import AuditTrail
from tessera.application.standing import NotInGoodStanding, check_user
from tessera.application.transaction import transaction
from tessera.core.acr import ACR_MFA, acr_satisfies
from tessera.core.clock import Clock
from tessera.core.roles import IMPERSONATOR
from tessera.core.scopes import ScopeError, parse_scope
from tessera.core.secrets import new_id, token_hash
from tessera.core.sessions import Session
from tessera.observability import events
from tessera.protocol.errors import InvalidGrant
from tessera.store.ports import Store, UnitOfWork

__all__ = ["AMR_IMPERSONATION", "TOKEN_TYPE_USER_ID", "Impersonation", "ImpersonationPolicy"]

TOKEN_TYPE_USER_ID = "urn:tessera:params:oauth:token-type:user-id"
AMR_IMPERSONATION = "imp"
"""First ``amr`` value of an impersonation session and its tokens."""


@dataclass(frozen=True, slots=True)
class ImpersonationPolicy:
    enabled: bool = True
    scope: str = "tessera:impersonate"
    min_acr: str = ACR_MFA
    max_auth_age: int = 900
    max_lifetime: int = 600


class Impersonation:
    def __init__(self, store: Store, audit: AuditTrail, clock: Clock,
                 policy: ImpersonationPolicy | None = None) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock
        self.policy = policy or ImpersonationPolicy()

    def check_actor(self, actor: dict[str, Any]) -> None:
        """The admin's (active) token allows impersonating now; ``InvalidGrant`` if not."""
        policy = self.policy
        try:
            scopes = parse_scope(str(actor.get("scope") or ""))
        except ScopeError:
            scopes = frozenset()
        if not isinstance(actor.get("sid"), str):
            raise InvalidGrant("impersonation needs an actor_token of a user's session")
        if policy.scope not in scopes:
            raise InvalidGrant(f"the actor_token lacks the scope {policy.scope}")
        if not acr_satisfies(actor.get("acr"), policy.min_acr):
            raise InvalidGrant("insufficient_user_authentication: impersonation needs an "
                               f"authentication of at least {policy.min_acr}")
        auth_time = actor.get("auth_time")
        if (not isinstance(auth_time, int | float) or isinstance(auth_time, bool)
                or self._clock.now() - auth_time > policy.max_auth_age):
            raise InvalidGrant("insufficient_user_authentication: the actor authenticated "
                               f"more than {policy.max_auth_age} seconds ago; "
                               "authenticate again")

    async def entitlements(self, user_id: str, actor: dict[str, Any]
                           ) -> tuple[frozenset[str], frozenset[str]]:
        """The roles of the administrator and of the user to impersonate, read now: the
        administrator must hold the impersonator role *at use* and both must be in good
        standing in the same tenant. ``InvalidGrant`` otherwise."""
        async with self._store.unit_of_work(read_only=True) as uow:
            return await self._check_parties(uow, user_id, actor)

    async def _check_parties(self, uow: UnitOfWork, user_id: str, actor: dict[str, Any]
                             ) -> tuple[frozenset[str], frozenset[str]]:
        admin = str(actor["sub"])
        if user_id == admin:
            raise InvalidGrant("an administrator cannot impersonate themselves")
        tenant = str(actor.get("tid"))
        try:
            await check_user(uow, admin, tenant_id=tenant)
        except NotInGoodStanding as exc:
            raise InvalidGrant("the actor_token is not active", detail=exc.reason) from None
        admin_roles = await uow.roles.of_user(admin)
        if IMPERSONATOR not in admin_roles:
            raise InvalidGrant(f"impersonation needs the {IMPERSONATOR} role",
                               detail="actor lacks the impersonator role")
        try:
            await check_user(uow, user_id, tenant_id=tenant)
        except NotInGoodStanding as exc:
            raise InvalidGrant("no such user to impersonate", detail=exc.reason) from None
        return admin_roles, await uow.roles.of_user(user_id)

    async def open_session(self, user_id: str, actor: dict[str, Any], *,
                           client_id: str) -> Session:
        """A new session of the user, for the admin named by ``actor`` (already checked,
        and checked again in this transaction), tied to the admin's session and token:
        revoking or bumping either ends it (``lifecycle.end_impersonations``)."""
        admin = str(actor["sub"])
        now = self._clock.now()
        amr = (AMR_IMPERSONATION, *(a for a in actor.get("amr") or ()
                                    if isinstance(a, str) and a != AMR_IMPERSONATION))
        async with transaction(self._store, self._audit) as tx:
            await self._check_parties(tx.uow, user_id, actor)
            actor_session = await tx.uow.sessions.get(str(actor["sid"]))
            if actor_session is None or not actor_session.active:
                raise InvalidGrant("the actor_token is not active", detail="actor session")
            session = Session(
                sid=new_id(), user_id=user_id,
                tenant_id=actor_session.tenant_id, sv=1, acr=str(actor["acr"]), amr=amr,
                auth_time=float(actor["auth_time"]), created_at=now, last_seen_at=now,
                user_agent=f"impersonated by {admin}", actor_sid=actor_session.sid,
                actor_jti=str(actor.get("jti") or "") or None)
            await tx.uow.sessions.add(session, browser_handle_hash=None)
            tx.audit(events.SESSION_IMPERSONATED, sid=session.sid, user_id=user_id,
                     tenant_id=session.tenant_id, actor=admin,
                     actor_sid_hash=token_hash(str(actor["sid"])), client_id=client_id,
                     acr=session.acr, amr=list(amr))
        return session
