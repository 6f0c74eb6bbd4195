"""Administrative operations shared by the CLI, the admin HTTP API and the console.

Each takes an ``AdminContext``: the few collaborators these use (the store, the audit
trail, the clock, a password hasher and three settings values), not the identity
service's composition (``identity.compose`` builds one as ``Identity.admin``)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from tessera.application import lifecycle
from tessera.application.client_keys import ClientKeys
from tessera.application.ports import AuditTrail, ClientCache, PasswordHashing
from tessera.application.standing import TenantDirectory
from tessera.application.transaction import Transaction, transaction
from tessera.core.clients import GRANT_ALIASES, GRANT_AUTHORIZATION_CODE, KNOWN_GRANTS, Client
from tessera.core.clock import Clock
from tessera.core.revocation import RevocationEvent, RevocationKind
from tessera.core.scopes import parse_scope
from tessera.core.secrets import new_secret, token_hash
from tessera.core.signals import LogoutTarget, ReceiverRefused, address_refused, check_receiver
from tessera.core.tenants import Tenant
from tessera.core.users import DEFAULT_TENANT, User
from tessera.observability import events
from tessera.store.ports import Store

__all__ = [
    "AdminContext",
    "AdminError",
    "backchannel_logout",
    "bump_version",
    "create_client",
    "create_user",
    "register_tenant",
    "revoke",
    "revoke_family",
    "revoke_sessions",
    "revoke_tenant",
    "set_backchannel_logout",
]

REVOKE_BATCH = 100
"""Sessions revoked per transaction by the bulk verbs: short transactions (row locks and
the outbox lock are held briefly) and visible progress."""


class AdminError(ValueError):
    """An administrative request is invalid (shown to the operator as is)."""


@dataclass(frozen=True, slots=True)
class AdminContext:
    """What the administrative verbs (here and in ``accounts``, ``client_admin``,
    ``tenancy``) use. ``clients`` and ``tenants``: this process's caches, told at once
    when a client or tenant changes. ``issuer`` and ``allowed_networks`` check
    back-channel logout URIs; ``token_ttl`` (the access-token lifetime) bounds how long a
    revocation must be remembered (``lifecycle``)."""

    store: Store
    audit: AuditTrail
    clock: Clock
    passwords: PasswordHashing
    clients: ClientCache
    tenants: TenantDirectory
    issuer: str
    token_ttl: float
    allowed_networks: tuple[str, ...] = ()


async def register_tenant(tx: Transaction, tenant_id: str, *, at: float,
                          name: str | None = None, actor: str = "cli") -> bool:
    """Register ``tenant_id`` if it is not yet (in the caller's transaction); True if
    this call did. Users and clients of an unregistered tenant register it."""
    if not tenant_id or len(tenant_id) > 64:
        raise AdminError("a tenant id is 1 to 64 characters")
    created = await tx.uow.tenants.add(Tenant(tenant_id, name or tenant_id, at))
    if created:
        tx.audit(events.TENANT_CREATED, tenant_id=tenant_id, actor=actor)
    return created


def backchannel_logout(ctx: AdminContext, uri: str | None, session_required: bool,
                       grants: Iterable[str]) -> LogoutTarget | None:
    """A checked back-channel logout registration (OIDC Back-Channel Logout §2.2): an
    absolute https URI (loopback http while the issuer is loopback http), no fragment,
    not a private address; only for clients that get sessions (authorization code)."""
    if uri is None:
        if session_required:
            raise AdminError("--backchannel-logout-session-required needs "
                             "--backchannel-logout-uri")
        return None
    if GRANT_AUTHORIZATION_CODE not in set(grants):
        raise AdminError("back-channel logout is for clients using authorization_code")
    try:
        _, host, _ = check_receiver(uri, issuer=ctx.issuer)
    except ReceiverRefused as exc:
        raise AdminError(f"backchannel logout URI refused: {exc}") from None
    reason = address_refused(host, issuer=ctx.issuer,
                             allowed=ctx.allowed_networks)
    if reason is not None and reason != "not an IP address":
        raise AdminError(f"backchannel logout URI refused: {reason}")
    return LogoutTarget("", uri, session_required)


async def set_backchannel_logout(ctx: AdminContext, client_id: str, uri: str | None,
                                 session_required: bool = False, *, actor: str) -> None:
    """Register, replace or (``uri`` None) remove a client's back-channel logout URI."""
    async with transaction(ctx.store, ctx.audit) as tx:
        client = await tx.uow.clients.get(client_id)
        if client is None:
            raise AdminError(f"no client {client_id!r}")
        target = backchannel_logout(ctx, uri, session_required, client.grant_types)
        await tx.uow.signals.set_logout(client_id, None if target is None else replace(
            target, client_id=client_id))
        tx.audit(events.CLIENT_UPDATED, client_id=client_id, backchannel_logout_uri=uri,
                 actor=actor)


async def create_client(ctx: AdminContext, *, name: str, grants: Iterable[str],
                        public: bool = False, redirect_uris: Iterable[str] = (),
                        post_logout_redirect_uris: Iterable[str] = (), scope: str = "",
                        audiences: Iterable[str] = (), tenant_id: str | None = None,
                        third_party: bool = False, subject_audiences: Iterable[str] = (),
                        keys: ClientKeys | None = None,
                        backchannel_logout_uri: str | None = None,
                        backchannel_logout_session_required: bool = False,
                        ) -> tuple[Client, str | None]:
    """Register a client; returns it and its secret (None for public clients). The secret
    is shown once: only its hash is stored. ``third_party`` clients need the user's
    consent; ``subject_audiences`` are the audiences of subject tokens it may exchange
    besides those addressed to it (token exchange trust). ``keys``: how it authenticates
    without a secret (no secret then: ``private_key_jwt``, workload identity) and its
    access-token format (``client_keys``)."""
    grant_set = frozenset(GRANT_ALIASES.get(g, g) for g in grants)
    unknown = grant_set - KNOWN_GRANTS
    if unknown:
        raise AdminError(f"unknown grant type(s): {', '.join(sorted(unknown))}")
    if not grant_set:
        raise AdminError("a client needs at least one grant type")
    redirects = tuple(redirect_uris)
    if GRANT_AUTHORIZATION_CODE in grant_set and not redirects:
        raise AdminError("authorization_code clients need at least one --redirect-uri")
    for uri in redirects:
        if "#" in uri or not uri.startswith(("https://", "http://")):
            raise AdminError(f"redirect URI {uri!r} must be absolute http(s) without fragment")
    if public and "client_credentials" in grant_set:
        raise AdminError("public clients cannot use client_credentials")
    try:
        scopes = parse_scope(scope)
    except ValueError as exc:
        raise AdminError(str(exc)) from None
    try:
        checked = (keys or ClientKeys()).checked(public=public,
                                                 issuer=ctx.issuer)
    except ValueError as exc:
        raise AdminError(str(exc)) from None
    logout = backchannel_logout(ctx, backchannel_logout_uri,
                                backchannel_logout_session_required, grant_set)
    secret = None if public or checked.auth_method is not None else new_secret()
    client = Client(
        client_id=f"c_{secrets.token_urlsafe(12)}", name=name, public=public,
        grant_types=grant_set, scopes=scopes, audiences=tuple(audiences),
        redirect_uris=redirects, post_logout_redirect_uris=tuple(post_logout_redirect_uris),
        secret_hash=token_hash(secret) if secret else None, tenant_id=tenant_id,
        created_at=ctx.clock.now(), third_party=third_party,
        subject_audiences=tuple(subject_audiences),
        auth_method=checked.auth_method, access_token_format=checked.access_token_format,
        jwks=checked.jwks, jwks_uri=checked.jwks_uri,
        workload_issuer=checked.workload_issuer, workload_subject=checked.workload_subject,
        workload_jwks=checked.workload_jwks, workload_jwks_uri=checked.workload_jwks_uri,
        tls_subject_dn=checked.tls_subject_dn,
    )
    async with transaction(ctx.store, ctx.audit) as tx:
        await register_tenant(tx, tenant_id or DEFAULT_TENANT, at=client.created_at)
        await tx.uow.clients.add(client)
        if logout is not None:
            await tx.uow.signals.set_logout(client.client_id, replace(
                logout, client_id=client.client_id))
        tx.audit(events.CLIENT_CREATED, client_id=client.client_id, name=name,
                 grants=sorted(grant_set), public=public, third_party=third_party,
                 tenant_id=tenant_id or DEFAULT_TENANT,
                 auth_method=client.token_endpoint_auth_method,
                 access_token_format=client.access_token_format)
    return client, secret


async def create_user(ctx: AdminContext, *, username: str, password: str,
                      tenant_id: str = DEFAULT_TENANT) -> User:
    if not username or len(username) > 200:
        raise AdminError("username must be 1 to 200 characters")
    if len(password) < 8:
        raise AdminError("password must be at least 8 characters")
    user = User(user_id=str(uuid.uuid4()), username=username, tenant_id=tenant_id,
                password_hash=ctx.passwords.hash(password),
                created_at=ctx.clock.now())
    async with transaction(ctx.store, ctx.audit) as tx:
        await register_tenant(tx, tenant_id, at=user.created_at)
        await tx.uow.users.add(user)
        tx.audit(events.USER_CREATED, user_id=user.user_id, tenant_id=tenant_id)
    return user


async def bump_version(ctx: AdminContext, *, sid: str | None = None,
                       user_id: str | None = None, reason: str, actor: str) -> int:
    """Bump one session's or all of a user's sessions' version; returns sessions bumped."""
    if (sid is None) == (user_id is None):
        raise AdminError("name exactly one of a session or a user")
    now = ctx.clock.now()
    ttl = ctx.token_ttl
    async with transaction(ctx.store, ctx.audit) as tx:
        if sid is not None:
            sv = await lifecycle.bump_session_version(tx, sid, at=now, reason=reason,
                                                      token_ttl=ttl, actor=actor)
            return 0 if sv is None else 1
        assert user_id is not None
        return await lifecycle.bump_user_version(tx, user_id, at=now, reason=reason,
                                                 token_ttl=ttl, actor=actor)


async def revoke(ctx: AdminContext, *, sid: str | None = None, user_id: str | None = None,
                 reason: str, actor: str) -> int:
    """Revoke one session or every session of a user; returns sessions revoked."""
    if (sid is None) == (user_id is None):
        raise AdminError("name exactly one of a session or a user")
    now = ctx.clock.now()
    ttl = ctx.token_ttl
    async with transaction(ctx.store, ctx.audit) as tx:
        if sid is not None:
            return int(await lifecycle.revoke_session(tx, sid, at=now, reason=reason,
                                                      token_ttl=ttl, actor=actor))
        assert user_id is not None
        return await lifecycle.revoke_user(tx, user_id, at=now, reason=reason,
                                           token_ttl=ttl, actor=actor)


async def revoke_family(ctx: AdminContext, family_id: str, *, reason: str,
                        actor: str) -> bool:
    """End one refresh family (a client's refresh chain in a session); True if this call
    revoked it, False if it already was. The session itself stays active."""
    now = ctx.clock.now()
    async with transaction(ctx.store, ctx.audit) as tx:
        family = await tx.uow.refresh.get_family(family_id)
        if family is None:
            raise AdminError(f"no refresh family {family_id!r}")
        if not await lifecycle.revoke_family(tx, family_id, at=now, reason=reason,
                                             token_ttl=ctx.token_ttl):
            return False
        tx.audit(events.TOKEN_REVOKED, family_id=family_id, sid=family.sid,
                 user_id=family.user_id, tenant_id=family.tenant_id, client_id=family.client_id,
                 token_type="refresh_token", reason=reason, actor=actor)
    return True


async def revoke_sessions(ctx: AdminContext, sids: Sequence[str], *, reason: str,
                          actor: str, batch: int = REVOKE_BATCH,
                          progress: Callable[[int], None] | None = None) -> int:
    """Revoke many sessions, ``batch`` per transaction (each with its outbox events and
    audit rows); returns how many this call revoked (already revoked ones are skipped).
    ``progress`` is called with the size of each committed batch. Not atomic as a whole:
    after a failure, running it again revokes what is left."""
    now = ctx.clock.now()
    ttl = ctx.token_ttl
    revoked = 0
    for start in range(0, len(sids), batch):
        chunk = sids[start:start + batch]
        async with transaction(ctx.store, ctx.audit) as tx:
            for sid in chunk:
                revoked += await lifecycle.revoke_session(tx, sid, at=now, reason=reason,
                                                          token_ttl=ttl, actor=actor)
        if progress is not None:
            progress(len(chunk))
    return revoked


async def revoke_tenant(ctx: AdminContext, tenant_id: str, *, reason: str, actor: str,
                        batch: int = REVOKE_BATCH,
                        progress: Callable[[int], None] | None = None) -> int:
    """Cut a whole tenant off: first one ``tenant.revoked`` event (verifiers deny every
    token of the tenant issued until now, at once) with its audit row, then every active
    session of the tenant in batches (``revoke_sessions``), which also ends their refresh
    families. Returns the sessions revoked. Safe to run again after an interruption."""
    now = ctx.clock.now()
    ttl = ctx.token_ttl
    async with transaction(ctx.store, ctx.audit) as tx:
        active = await tx.uow.sessions.active_for_tenant(tenant_id)
        tx.publish(RevocationEvent(
            RevocationKind.TENANT_REVOKED, tenant_id, now,
            expires_at=now + ttl + lifecycle.VERIFIER_LEEWAY,
            data={"before": now, "reason": reason}))
        tx.audit(events.TENANT_REVOKED, tenant_id=tenant_id, sessions=len(active),
                 reason=reason, actor=actor)
    return await revoke_sessions(ctx, [s.sid for s in active], reason=reason,
                                 actor=actor, batch=batch, progress=progress)
