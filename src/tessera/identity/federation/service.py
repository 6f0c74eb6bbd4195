"""Federation: upstream logins become local users and sessions; upstream session ends
become local revocations.

- ``login``: the validated upstream claims are normalised (``mapping``), then in one
  transaction the upstream subject is found or linked (never silently: a verified e-mail of
  a configured domain naming a local password account, or an administrator's link) or a
  user is provisioned just in time; roles follow the mapped groups; a changed profile
  bumps the version of every session of the user (tokens with the old claims go stale).
- ``logout``: an OpenID Connect Back-Channel Logout 1.0 logout token (§2.6 checks, each
  one named in the refusal) revokes the local sessions linked to its ``sid`` or ``sub``.
- ``security_event``: a CAEP ``session-revoked`` or ``credential-change`` Security Event
  Token (RFC 8417, pushed per RFC 8935) does the same.
Revocations go through ``application.lifecycle`` in the transaction that records the token's
``jti`` (the outbox), like every other revocation.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from tessera.application import lifecycle
from tessera.application.transaction import Transaction, transaction
from tessera.core.clock import Clock
from tessera.core.federation import ExternalIdentity, IdentityProvider
from tessera.core.users import User
from tessera.identity.federation.mapping import ClaimError, ClaimMapping, Profile, normalise
from tessera.identity.federation.upstream import (
    UpstreamClient,
    UpstreamRefused,
)
from tessera.keys import Sealer
from tessera.observability import events
from tessera.observability.audit import AuditLog
from tessera.store.ports import Store

__all__ = ["BACKCHANNEL_LOGOUT_EVENT", "CAEP_CREDENTIAL_CHANGE", "CAEP_SESSION_REVOKED",
           "FEDERATED_PASSWORD", "Federation", "FederationError", "LoginResult",
           "new_idp_id", "provider_urls", "secret_context"]

_log = logging.getLogger("tessera.federation")

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
CAEP_SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
CAEP_CREDENTIAL_CHANGE = \
    "https://schemas.openid.net/secevent/caep/event-type/credential-change"
FEDERATED_PASSWORD = "!federated"
"""The password hash of a just-in-time user: not a PHC string, so no password matches."""
LOGOUT_TOKEN_MAX_AGE = 300
"""A logout token or security event older than this (``iat``) is refused: its ``jti``
is remembered this long, so a replay is always caught."""


class FederationError(Exception):
    """An upstream login or inbound token is refused; ``reason`` is logged and, for
    inbound tokens, sent as the ``error_description``."""

    def __init__(self, reason: str, *, user_message: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.user_message = user_message or reason


def secret_context(idp_id: str) -> str:
    """The sealing context of a provider's client secret (bound to its row)."""
    return f"tessera/idp-client-secret/{idp_id}"


def new_idp_id() -> str:
    return f"idp_{secrets.token_urlsafe(9)}"


def provider_urls(issuer: str, idp_id: str) -> dict[str, str]:
    """Where the provider sends the browser back, logout tokens and security events."""
    base = f"{issuer}/federation/{idp_id}"
    return {"redirect_uri": f"{base}/callback",
            "backchannel_logout_uri": f"{base}/backchannel-logout",
            "ssf_push_uri": f"{base}/ssf/push"}


@dataclass(frozen=True, slots=True)
class LoginResult:
    user: User
    profile: Profile
    upstream_sid: str | None


class Federation:
    def __init__(self, store: Store, audit: AuditLog, clock: Clock, sealer: Sealer, *,
                 issuer: str, timeout: float, leeway: int, token_ttl: int,
                 transport: Any = None) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock
        self._sealer = sealer
        self._issuer = issuer
        self._timeout = timeout
        self._leeway = leeway
        self._token_ttl = token_ttl
        self.transport = transport
        """An httpx transport for every upstream call (tests inject failures)."""
        self._clients: dict[tuple[str, str, str, str], UpstreamClient] = {}

    # providers ------------------------------------------------------------------------
    async def provider(self, idp_id: str) -> IdentityProvider | None:
        async with self._store.unit_of_work(read_only=True) as uow:
            return await uow.federation.provider_by_id(idp_id)

    async def providers(self, tenant_id: str) -> list[IdentityProvider]:
        async with self._store.unit_of_work(read_only=True) as uow:
            return [p for p in await uow.federation.providers(tenant_id) if not p.disabled]

    async def polled_providers(self) -> list[IdentityProvider]:
        """Enabled providers of every tenant whose security events are polled."""
        async with self._store.unit_of_work(read_only=True) as uow:
            return [p for p in await uow.federation.providers()
                    if not p.disabled and p.ssf_poll_url]

    async def by_name(self, tenant_id: str, name: str) -> IdentityProvider | None:
        async with self._store.unit_of_work(read_only=True) as uow:
            provider = await uow.federation.provider(tenant_id, name)
        return provider if provider is not None and not provider.disabled else None

    async def home_realm(self, tenant_id: str, email: str | None) -> IdentityProvider | None:
        """The provider whose ``home_realm_domains`` hold this e-mail's domain."""
        if not email or "@" not in email:
            return None
        domain = email.rsplit("@", 1)[1].lower()
        for provider in await self.providers(tenant_id):
            if domain in ClaimMapping.model_validate(provider.mapping).home_realm_domains:
                return provider
        return None

    def client(self, provider: IdentityProvider) -> UpstreamClient:
        """The cached upstream client (metadata and keys kept between requests)."""
        key = (provider.idp_id, provider.issuer, provider.client_id, provider.sealed_secret)
        client = self._clients.get(key)
        if client is None:
            client = UpstreamClient(
                issuer=provider.issuer, client_id=provider.client_id,
                client_secret=self._sealer.open(provider.sealed_secret,
                                                context=secret_context(provider.idp_id)
                                                ).decode(),
                scope=provider.scope,
                redirect_uri=provider_urls(self._issuer, provider.idp_id)["redirect_uri"],
                timeout=self._timeout, leeway=self._leeway, transport=self.transport,
                now=self._clock.now)
            self._clients[key] = client
        return client

    # login ------------------------------------------------------------------------------
    async def login(self, provider: IdentityProvider, id_claims: dict[str, Any],
                    userinfo: dict[str, Any]) -> LoginResult:
        mapping = ClaimMapping.model_validate(provider.mapping)
        try:
            profile = normalise(mapping, {**userinfo, **id_claims})
        except ClaimError as exc:
            raise FederationError(f"upstream claims refused: {exc}") from None
        upstream_sid = id_claims.get("sid")
        if upstream_sid is not None and (not isinstance(upstream_sid, str)
                                         or len(upstream_sid) > 255):
            raise FederationError("upstream sid is not a short string")
        now = self._clock.now()
        async with transaction(self._store, self._audit) as tx:
            tenant = await tx.uow.tenants.get(provider.tenant_id)
            if tenant is not None and not tenant.active:
                raise FederationError("the provider's tenant is suspended",
                                      user_message="This organisation is suspended.")
            link = await tx.uow.federation.linked(provider.idp_id, profile.subject)
            if link is None:
                user = await self._link_or_provision(tx, provider, mapping, profile, now)
                previous_roles: frozenset[str] = frozenset()
                changed = False
            else:
                found = await tx.uow.users.get(link.user_id)
                if found is None or found.disabled or found.deleted_at is not None:
                    raise FederationError("the linked account is disabled",
                                          user_message="This account is disabled.")
                user = found
                previous_roles = frozenset(link.profile.get("roles", ()))
                changed = link.profile_hash != profile.fingerprint()
                if changed:
                    await tx.uow.federation.update_profile(
                        provider.idp_id, profile.subject, profile=profile.claims(),
                        profile_hash=profile.fingerprint(), at=now)
            roles_changed = await self._sync_roles(tx, provider, user, previous_roles,
                                                   profile.roles, now)
            if changed or roles_changed:
                bumped = await lifecycle.bump_user_version(
                    tx, user.user_id, at=now, reason="upstream_claims_changed",
                    token_ttl=self._token_ttl, actor=f"idp:{provider.name}")
                tx.audit(events.FEDERATION_PROFILE_CHANGED, user_id=user.user_id,
                         tenant_id=user.tenant_id, idp=provider.name, sessions=bumped)
        return LoginResult(user=user, profile=profile, upstream_sid=upstream_sid)

    async def _link_or_provision(self, tx: Transaction, provider: IdentityProvider,
                                 mapping: ClaimMapping, profile: Profile, now: float) -> User:
        user: User | None = None
        linked_by = "jit"
        domain = profile.email.rsplit("@", 1)[1].lower() \
            if profile.email and "@" in profile.email else None
        if profile.email_verified and domain is not None \
                and domain in {d.lower() for d in mapping.linking.verified_email_domains}:
            candidate = await tx.uow.users.by_username(provider.tenant_id, profile.email or "")
            # only a local password account: never another upstream's provisioned user
            if candidate is not None and not candidate.disabled \
                    and candidate.password_hash != FEDERATED_PASSWORD:
                user, linked_by = candidate, "verified_email"
        if user is None:
            user = User(user_id=str(uuid.uuid4()),
                        username=f"{provider.name}:{profile.subject}"[:200],
                        tenant_id=provider.tenant_id, password_hash=FEDERATED_PASSWORD,
                        created_at=now)
            await tx.uow.users.add(user)
            tx.audit(events.USER_CREATED, user_id=user.user_id, tenant_id=user.tenant_id,
                     idp=provider.name)
        await tx.uow.federation.link(ExternalIdentity(
            idp_id=provider.idp_id, subject=profile.subject, user_id=user.user_id,
            profile=profile.claims(), profile_hash=profile.fingerprint(),
            linked_by=linked_by, created_at=now, updated_at=now))
        tx.audit(events.FEDERATION_LINKED, user_id=user.user_id, tenant_id=user.tenant_id,
                 idp=provider.name, linked_by=linked_by)
        return user

    async def _sync_roles(self, tx: Transaction, provider: IdentityProvider, user: User,
                          previous: frozenset[str], wanted: frozenset[str],
                          now: float) -> bool:
        """Grant the roles the groups give now; take back those an earlier login gave
        that the groups no longer give (roles granted by an administrator stay)."""
        changed = False
        for role in sorted(wanted):
            if await tx.uow.roles.grant(user.user_id, role, at=now, by=f"idp:{provider.name}"):
                changed = True
                tx.audit(events.ROLE_GRANTED, user_id=user.user_id, tenant_id=user.tenant_id,
                         role=role, actor=f"idp:{provider.name}")
        for role in sorted(previous - wanted):
            if await tx.uow.roles.revoke(user.user_id, role):
                changed = True
                tx.audit(events.ROLE_REVOKED, user_id=user.user_id, tenant_id=user.tenant_id,
                         role=role, actor=f"idp:{provider.name}")
        return changed

    async def link(self, provider: IdentityProvider, subject: str, user: User, *,
                   actor: str) -> bool:
        """An administrator's link of an upstream subject to an existing user."""
        if user.tenant_id != provider.tenant_id:
            raise FederationError("the user belongs to another tenant")
        now = self._clock.now()
        async with transaction(self._store, self._audit) as tx:
            done = await tx.uow.federation.link(ExternalIdentity(
                idp_id=provider.idp_id, subject=subject, user_id=user.user_id, profile={},
                profile_hash="", linked_by="admin", created_at=now, updated_at=now))
            if done:
                tx.audit(events.FEDERATION_LINKED, user_id=user.user_id,
                         tenant_id=user.tenant_id, idp=provider.name, linked_by="admin",
                         actor=actor)
        return done

    # upstream session end ----------------------------------------------------------------
    def _check_fresh(self, claims: dict[str, Any]) -> float:
        iat = claims.get("iat")
        if not isinstance(iat, (int, float)) or isinstance(iat, bool):
            raise FederationError("iat is missing")
        now = self._clock.now()
        if iat > now + self._leeway:
            raise FederationError("iat is in the future")
        if iat < now - LOGOUT_TOKEN_MAX_AGE - self._leeway:
            raise FederationError("iat is too old")
        return float(iat)

    async def _verified(self, provider: IdentityProvider, token: str, typ: str
                        ) -> dict[str, Any]:
        client = self.client(provider)
        try:
            claims = await client.verify_jwt(token, typ=typ)
            client.check_claims(claims, iat={"essential": True},
                                jti={"essential": True})
        except UpstreamRefused as exc:
            raise FederationError(exc.reason) from None
        return claims

    async def logout(self, provider: IdentityProvider, logout_token: str) -> int:
        """OIDC Back-Channel Logout 1.0 §2.6; returns the sessions revoked."""
        claims = await self._verified(provider, logout_token, "logout+jwt")
        self._check_fresh(claims)
        events_claim = claims.get("events")
        if not isinstance(events_claim, dict) \
                or not isinstance(events_claim.get(BACKCHANNEL_LOGOUT_EVENT), dict):
            raise FederationError("events lacks the back-channel logout event")
        if "nonce" in claims:
            raise FederationError("a logout token must not contain a nonce")
        sub, sid = claims.get("sub"), claims.get("sid")
        if sub is None and sid is None:
            raise FederationError("the logout token names neither sub nor sid")
        if (sub is not None and not isinstance(sub, str)) or \
                (sid is not None and not isinstance(sid, str)):
            raise FederationError("sub and sid must be strings")
        return await self._end(provider, claims, upstream_sid=sid, subject=sub,
                               reason="upstream_logout")

    async def security_event(self, provider: IdentityProvider, set_token: str) -> int:
        """A CAEP ``session-revoked`` / ``credential-change`` SET (RFC 8417, RFC 8935)."""
        claims = await self._verified(provider, set_token, "secevent+jwt")
        self._check_fresh(claims)
        events_claim = claims.get("events")
        if not isinstance(events_claim, dict) or not events_claim:
            raise FederationError("the SET has no events")
        known = [e for e in (CAEP_SESSION_REVOKED, CAEP_CREDENTIAL_CHANGE)
                 if isinstance(events_claim.get(e), dict)]
        if not known:
            raise FederationError("no supported event (session-revoked, credential-change)")
        event = events_claim[known[0]]
        subject = claims.get("sub_id", event.get("subject"))
        sub, sid = _subject_ids(subject, provider.issuer)
        if sub is None and sid is None:
            raise FederationError("the event's subject names no user or session")
        reason = "upstream_session_revoked" if known[0] == CAEP_SESSION_REVOKED \
            else "upstream_credential_change"
        return await self._end(provider, claims, upstream_sid=sid, subject=sub, reason=reason)

    async def _end(self, provider: IdentityProvider, claims: dict[str, Any], *,
                   upstream_sid: str | None, subject: str | None, reason: str) -> int:
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 255:
            raise FederationError("jti is missing")
        now = self._clock.now()
        revoked = 0
        async with transaction(self._store, self._audit) as tx:
            if not await tx.uow.federation.remember_jti(
                    provider.idp_id, jti,
                    expires_at=now + LOGOUT_TOKEN_MAX_AGE + 2 * self._leeway):
                raise FederationError("jti was seen before (replay)")
            sids = await tx.uow.federation.sessions_for_upstream(
                provider.idp_id, upstream_sid=upstream_sid, subject=subject)
            for sid in sids:
                revoked += await lifecycle.revoke_session(
                    tx, sid, at=now, reason=reason, token_ttl=self._token_ttl,
                    actor=f"idp:{provider.name}")
            tx.audit(events.FEDERATION_SESSION_ENDED, tenant_id=provider.tenant_id,
                     idp=provider.name, reason=reason, sessions=revoked)
        return revoked


def _subject_ids(subject: Any, issuer: str) -> tuple[str | None, str | None]:
    """(upstream sub, upstream sid) named by an RFC 9493 subject identifier: ``iss_sub``
    (of this issuer), ``opaque`` (a user's sub), or ``complex`` with ``user`` and/or
    ``session`` members."""
    if not isinstance(subject, dict):
        return None, None
    fmt = subject.get("format")
    if fmt == "iss_sub":
        if subject.get("iss") != issuer or not isinstance(subject.get("sub"), str):
            return None, None
        return subject["sub"], None
    if fmt == "opaque":
        value = subject.get("id")
        return (value, None) if isinstance(value, str) else (None, None)
    if fmt == "complex":
        sub, _ = _subject_ids(subject.get("user"), issuer)
        session = subject.get("session")
        sid = session.get("id") if isinstance(session, dict) \
            and session.get("format") == "opaque" and isinstance(session.get("id"), str) \
            else None
        return sub, sid
    return None, None
