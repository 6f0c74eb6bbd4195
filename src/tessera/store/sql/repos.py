"""Repositories over one ``AsyncConnection`` inside one transaction (SQLAlchemy Core):
clients, users, sessions, codes and refresh families here; the append-only logs and keys
in ``logs``; second factors in ``factors``; tenants, roles, consents and recovery codes
in ``trust``; the verifier registry in ``registry``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tessera.core.clients import Client
from tessera.core.refresh import RefreshFamily, RefreshToken
from tessera.core.revocation import RevocationEvent
from tessera.core.sessions import AuthorizationCode, Session
from tessera.core.users import User
from tessera.store import ports
from tessera.store.ports import StoreError
from tessera.store.sql.bounds import SqlDeviceCodeRepo, SqlSessionPolicyRepo
from tessera.store.sql.client_auth import SqlAssertionReplayRepo, SqlReferenceTokenRepo
from tessera.store.sql.factors import SqlFactorRepo
from tessera.store.sql.federation import SqlFederationRepo
from tessera.store.sql.logs import SqlAuditRepo, SqlKeyRepo, SqlRevocationLog
from tessera.store.sql.registry import SqlVerifierRegistry
from tessera.store.sql.repos_base import Repo as _Repo
from tessera.store.sql.schema import (
    auth_codes,
    clients,
    refresh_families,
    refresh_tokens,
    sessions,
    users,
)
from tessera.store.sql.signals import SqlSignalRepo
from tessera.store.sql.trust import (
    SqlConsentRepo,
    SqlRecoveryCodeRepo,
    SqlRoleRepo,
    SqlTenantRepo,
)

__all__ = ["SqlUnitOfWork"]


def _client(row: RowMapping) -> Client:
    config = _auth_config(row["auth_config"])
    return Client(
        client_id=row["client_id"], name=row["name"], public=row["public"],
        grant_types=frozenset(row["grant_types"]), scopes=frozenset(row["scopes"]),
        audiences=tuple(row["audiences"]), redirect_uris=tuple(row["redirect_uris"]),
        post_logout_redirect_uris=tuple(row["post_logout_redirect_uris"]),
        secret_hash=row["secret_hash"], tenant_id=row["tenant_id"], disabled=row["disabled"],
        created_at=row["created_at"], third_party=row["third_party"],
        subject_audiences=tuple(row["subject_audiences"]),
        auth_method=row["auth_method"],
        access_token_format=row["access_token_format"] or "jwt",
        jwks=config.get("jwks"), jwks_uri=config.get("jwks_uri"),
        workload_issuer=config.get("workload_issuer"),
        workload_subject=config.get("workload_subject"),
        workload_jwks=config.get("workload_jwks"),
        workload_jwks_uri=config.get("workload_jwks_uri"),
        tls_subject_dn=config.get("tls_subject_dn"),
    )


_AUTH_CONFIG = ("jwks", "jwks_uri", "workload_issuer", "workload_subject", "workload_jwks",
                "workload_jwks_uri", "tls_subject_dn")


def _auth_config(raw: Any) -> dict[str, str | None]:
    """The key material of a client without a shared secret (``auth_config`` JSON)."""
    config = raw if isinstance(raw, dict) else {}
    return {name: (str(config[name]) if config.get(name) is not None else None)
            for name in _AUTH_CONFIG}


def _auth_config_of(client: Client) -> dict[str, str] | None:
    config = {name: getattr(client, name) for name in _AUTH_CONFIG
              if getattr(client, name) is not None}
    return config or None


class SqlClientRepo(_Repo):
    async def add(self, client: Client) -> None:
        await self.conn.execute(insert(clients).values(
            client_id=client.client_id, name=client.name, public=client.public,
            secret_hash=client.secret_hash, grant_types=sorted(client.grant_types),
            scopes=sorted(client.scopes), audiences=list(client.audiences),
            redirect_uris=list(client.redirect_uris),
            post_logout_redirect_uris=list(client.post_logout_redirect_uris),
            tenant_id=client.tenant_id, disabled=client.disabled, created_at=client.created_at,
            third_party=client.third_party, subject_audiences=list(client.subject_audiences),
            auth_method=client.auth_method,
            access_token_format=(None if client.access_token_format == "jwt"
                                 else client.access_token_format),
            auth_config=_auth_config_of(client),
        ))

    async def get(self, client_id: str) -> Client | None:
        row = await self._one(select(clients).where(clients.c.client_id == client_id))
        return _client(row) if row else None

    async def all(self) -> list[Client]:
        rows = (await self.conn.execute(select(clients).order_by(clients.c.created_at)))
        return [_client(r) for r in rows.mappings()]

    async def set_disabled(self, client_id: str, disabled: bool) -> bool:
        result = await self.conn.execute(update(clients).where(
            clients.c.client_id == client_id).values(disabled=disabled))
        return bool(result.rowcount)

    async def set_secret(self, client_id: str, secret_hash: str) -> bool:
        result = await self.conn.execute(update(clients).where(
            clients.c.client_id == client_id).values(secret_hash=secret_hash))
        return bool(result.rowcount)

    async def delete(self, client_id: str) -> bool:
        result = await self.conn.execute(delete(clients).where(
            clients.c.client_id == client_id))
        return bool(result.rowcount)


def _user(row: RowMapping) -> User:
    return User(user_id=row["user_id"], username=row["username"], tenant_id=row["tenant_id"],
                password_hash=row["password_hash"], disabled=row["disabled"],
                created_at=row["created_at"], deleted_at=row["deleted_at"])


class SqlUserRepo(_Repo):
    async def add(self, user: User) -> None:
        try:
            async with self.conn.begin_nested():
                await self.conn.execute(insert(users).values(
                    user_id=user.user_id, tenant_id=user.tenant_id, username=user.username,
                    password_hash=user.password_hash, disabled=user.disabled,
                    created_at=user.created_at,
                ))
        except IntegrityError:
            raise StoreError(f"user {user.username!r} already exists in tenant "
                             f"{user.tenant_id!r}") from None

    async def get(self, user_id: str) -> User | None:
        row = await self._one(select(users).where(users.c.user_id == user_id))
        return _user(row) if row else None

    async def by_username(self, tenant_id: str, username: str) -> User | None:
        row = await self._one(select(users).where(
            users.c.tenant_id == tenant_id, users.c.username == username))
        return _user(row) if row else None

    async def search(self, *, username_prefix: str | None = None,
                     tenant_id: str | None = None, limit: int = 100) -> list[User]:
        stmt = select(users).order_by(users.c.username, users.c.tenant_id).limit(limit)
        if username_prefix:
            escaped = (username_prefix.replace("\\", "\\\\").replace("%", "\\%")
                       .replace("_", "\\_"))
            stmt = stmt.where(users.c.username.like(f"{escaped}%", escape="\\"))
        if tenant_id is not None:
            stmt = stmt.where(users.c.tenant_id == tenant_id)
        return [_user(r) for r in (await self.conn.execute(stmt)).mappings()]

    async def get_many(self, user_ids: Sequence[str]) -> list[User]:
        if not user_ids:
            return []
        rows = await self.conn.execute(select(users).where(users.c.user_id.in_(user_ids)))
        return [_user(r) for r in rows.mappings()]

    async def _update_live(self, user_id: str, **values: Any) -> bool:
        result = await self.conn.execute(update(users).where(
            users.c.user_id == user_id, users.c.deleted_at.is_(None)).values(**values))
        return bool(result.rowcount)

    async def set_disabled(self, user_id: str, disabled: bool) -> bool:
        return await self._update_live(user_id, disabled=disabled)

    async def set_password(self, user_id: str, password_hash: str) -> bool:
        return await self._update_live(user_id, password_hash=password_hash)

    async def tombstone(self, user_id: str, *, at: float) -> bool:
        return await self._update_live(user_id, disabled=True, deleted_at=at,
                                       password_hash="!", username=f"deleted:{user_id}")


def _session(row: Mapping[Any, Any]) -> Session:
    return Session(
        sid=row["sid"], user_id=row["user_id"], tenant_id=row["tenant_id"], sv=row["sv"],
        acr=row["acr"], amr=tuple(row["amr"]), auth_time=row["auth_time"],
        created_at=row["created_at"], last_seen_at=row["last_seen_at"],
        revoked_at=row["revoked_at"], revoke_reason=row["revoke_reason"],
        user_agent=row["user_agent"], actor_sid=row["actor_sid"], actor_jti=row["actor_jti"],
        client_address=row["client_address"], device_client_id=row["device_client_id"],
    )


def _acting_under(by_sid: bool, by_jti: bool) -> Any:
    matches = [c for c in (sessions.c.actor_sid == bindparam("sid") if by_sid else None,
                           sessions.c.actor_jti == bindparam("jti") if by_jti else None)
               if c is not None]
    return (select(sessions).where(or_(*matches), sessions.c.revoked_at.is_(None))
            .order_by(sessions.c.created_at))


_ACTING_UNDER = {(s, j): _acting_under(s, j) for s in (False, True) for j in (False, True)
                 if s or j}
# every refresh rotation writes these two (``rotations.rotate_many_in``)
_TOUCH = update(sessions).where(sessions.c.sid == bindparam("sid_"))
_ADD_TOKEN = insert(refresh_tokens)


class SqlSessionRepo(_Repo):
    async def add(self, session: Session, *, browser_handle_hash: str | None) -> None:
        await self.conn.execute(insert(sessions).values(
            sid=session.sid, user_id=session.user_id, tenant_id=session.tenant_id,
            sv=session.sv, acr=session.acr, amr=list(session.amr), auth_time=session.auth_time,
            created_at=session.created_at, last_seen_at=session.last_seen_at,
            user_agent=session.user_agent, browser_handle_hash=browser_handle_hash,
            actor_sid=session.actor_sid, actor_jti=session.actor_jti,
            client_address=session.client_address, device_client_id=session.device_client_id,
        ))

    async def get(self, sid: str) -> Session | None:
        row = await self._one(select(sessions).where(sessions.c.sid == sid))
        return _session(row) if row else None

    async def by_browser_handle(self, handle_hash: str) -> Session | None:
        row = await self._one(select(sessions).where(
            sessions.c.browser_handle_hash == handle_hash))
        return _session(row) if row else None

    async def touch(self, sid: str, at: float) -> None:
        await self.conn.execute(_TOUCH, {"sid_": sid, "last_seen_at": at})

    async def revoke(self, sid: str, *, at: float, reason: str) -> bool:
        result = await self.conn.execute(
            update(sessions).where(sessions.c.sid == sid, sessions.c.revoked_at.is_(None))
            .values(revoked_at=at, revoke_reason=reason, browser_handle_hash=None))
        return bool(result.rowcount)

    async def revoke_many(self, sids: Sequence[str], *, at: float,
                          reason: str) -> list[Session]:
        if not sids:
            return []
        result = await self.conn.execute(
            update(sessions).where(sessions.c.sid.in_(sids), sessions.c.revoked_at.is_(None))
            .values(revoked_at=at, revoke_reason=reason, browser_handle_hash=None)
            .returning(*sessions.c))
        revoked = {row["sid"]: _session(row) for row in result.mappings()}
        return [revoked[sid] for sid in dict.fromkeys(sids) if sid in revoked]

    async def acting_under_any(self, sids: Sequence[str]) -> list[Session]:
        if not sids:
            return []
        rows = await self.conn.execute(select(sessions).where(
            sessions.c.actor_sid.in_(sids), sessions.c.revoked_at.is_(None))
            .order_by(sessions.c.created_at))
        return [_session(r) for r in rows.mappings()]

    async def bump_version(self, sid: str) -> int | None:
        result = await self.conn.execute(
            update(sessions).where(sessions.c.sid == sid)
            .values(sv=sessions.c.sv + 1).returning(sessions.c.sv))
        row = result.first()
        return int(row[0]) if row else None

    async def step_up(self, sid: str, *, acr: str, amr: tuple[str, ...], auth_time: float,
                      browser_handle_hash: str | None = None) -> Session | None:
        values: dict[str, Any] = {"acr": acr, "amr": list(amr), "auth_time": auth_time}
        if browser_handle_hash is not None:
            values["browser_handle_hash"] = browser_handle_hash
        result = await self.conn.execute(
            update(sessions).where(sessions.c.sid == sid, sessions.c.revoked_at.is_(None))
            .values(**values).returning(*sessions.c))
        row = result.mappings().first()
        return _session(row) if row else None

    async def hold_user(self, user_id: str) -> None:
        # SQLite: write units are serialised already; PostgreSQL: a row lock on the user
        await self.conn.execute(select(users.c.user_id).where(users.c.user_id == user_id)
                                .with_for_update())

    async def active_for_user(self, user_id: str) -> list[Session]:
        rows = await self.conn.execute(select(sessions).where(
            sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
            .order_by(sessions.c.created_at))
        return [_session(r) for r in rows.mappings()]

    async def acting_under(self, *, sid: str | None = None,
                           jti: str | None = None) -> list[Session]:
        if not sid and not jti:
            return []
        # built once per shape (every access-token revocation asks by jti)
        stmt = _ACTING_UNDER[(bool(sid), bool(jti))]
        rows = await self.conn.execute(stmt, {"sid": sid, "jti": jti})
        return [_session(r) for r in rows.mappings()]

    async def active_for_tenant(self, tenant_id: str) -> list[Session]:
        rows = await self.conn.execute(select(sessions).where(
            sessions.c.tenant_id == tenant_id, sessions.c.revoked_at.is_(None))
            .order_by(sessions.c.created_at))
        return [_session(r) for r in rows.mappings()]

    async def search(self, *, user_ids: Sequence[str] | None = None,
                     tenant_id: str | None = None, include_revoked: bool = False,
                     offset: int = 0, limit: int = 50) -> list[Session]:
        if user_ids is not None and not user_ids:
            return []
        stmt = (select(sessions).order_by(sessions.c.created_at.desc(), sessions.c.sid)
                .offset(offset).limit(limit))
        if user_ids is not None:
            stmt = stmt.where(sessions.c.user_id.in_(user_ids))
        if tenant_id is not None:
            stmt = stmt.where(sessions.c.tenant_id == tenant_id)
        if not include_revoked:
            stmt = stmt.where(sessions.c.revoked_at.is_(None))
        return [_session(r) for r in (await self.conn.execute(stmt)).mappings()]


def _code(row: RowMapping) -> AuthorizationCode:
    return AuthorizationCode(
        code_hash=row["code_hash"], client_id=row["client_id"], sid=row["sid"],
        user_id=row["user_id"], redirect_uri=row["redirect_uri"],
        scope=frozenset(row["scope"]), code_challenge=row["code_challenge"],
        nonce=row["nonce"], expires_at=row["expires_at"], consumed_at=row["consumed_at"],
        family_id=row["family_id"],
    )


class SqlCodeRepo(_Repo):
    async def add(self, code: AuthorizationCode) -> None:
        await self.conn.execute(insert(auth_codes).values(
            code_hash=code.code_hash, client_id=code.client_id, sid=code.sid,
            user_id=code.user_id, redirect_uri=code.redirect_uri, scope=sorted(code.scope),
            code_challenge=code.code_challenge, nonce=code.nonce, expires_at=code.expires_at,
        ))

    async def consume(self, code_hash: str, *, at: float) -> tuple[AuthorizationCode, bool] | None:
        result = await self.conn.execute(
            update(auth_codes)
            .where(auth_codes.c.code_hash == code_hash, auth_codes.c.consumed_at.is_(None))
            .values(consumed_at=at))
        row = await self._one(select(auth_codes).where(auth_codes.c.code_hash == code_hash))
        if row is None:
            return None
        return _code(row), bool(result.rowcount)

    async def attach_family(self, code_hash: str, family_id: str) -> None:
        await self.conn.execute(update(auth_codes).where(auth_codes.c.code_hash == code_hash)
                                .values(family_id=family_id))

    async def prune(self, before: float) -> int:
        result = await self.conn.execute(delete(auth_codes)
                                         .where(auth_codes.c.expires_at < before))
        return int(result.rowcount or 0)


def _family(row: Mapping[Any, Any]) -> RefreshFamily:
    return RefreshFamily(
        family_id=row["family_id"], sid=row["sid"], client_id=row["client_id"],
        user_id=row["user_id"], tenant_id=row["tenant_id"], scope=frozenset(row["scope"]),
        audience=tuple(row["audience"]), created_at=row["created_at"],
        expires_at=row["expires_at"], revoked_at=row["revoked_at"],
        revoke_reason=row["revoke_reason"], jkt=row["jkt"],
    )


def _refresh(row: Mapping[Any, Any]) -> RefreshToken:
    return RefreshToken(
        token_hash=row["token_hash"], family_id=row["family_id"],
        generation=row["generation"], issued_at=row["issued_at"],
        expires_at=row["expires_at"], access_jti=row["access_jti"],
        rotated_at=row["rotated_at"], successor_hash=row["successor_hash"],
    )


class SqlRefreshRepo(_Repo):
    async def add_family(self, family: RefreshFamily) -> None:
        await self.conn.execute(insert(refresh_families).values(
            family_id=family.family_id, sid=family.sid, client_id=family.client_id,
            user_id=family.user_id, tenant_id=family.tenant_id, scope=sorted(family.scope),
            audience=list(family.audience), created_at=family.created_at,
            expires_at=family.expires_at, jkt=family.jkt,
        ))

    async def get_family(self, family_id: str) -> RefreshFamily | None:
        row = await self._one(select(refresh_families)
                              .where(refresh_families.c.family_id == family_id))
        return _family(row) if row else None

    async def add_token(self, token: RefreshToken) -> None:
        await self.conn.execute(_ADD_TOKEN, {
            "token_hash": token.token_hash, "family_id": token.family_id,
            "generation": token.generation, "issued_at": token.issued_at,
            "expires_at": token.expires_at, "access_jti": token.access_jti})

    async def get_token(self, token_hash: str) -> RefreshToken | None:
        row = await self._one(select(refresh_tokens)
                              .where(refresh_tokens.c.token_hash == token_hash))
        return _refresh(row) if row else None

    async def get_chain(self, token_hash: str
                        ) -> tuple[RefreshToken, RefreshFamily, Session] | None:
        tables = (("t_", refresh_tokens), ("f_", refresh_families), ("s_", sessions))
        stmt = (select(*(c.label(prefix + c.name) for prefix, t in tables for c in t.c))
                .select_from(refresh_tokens
                             .join(refresh_families,
                                   refresh_families.c.family_id == refresh_tokens.c.family_id)
                             .join(sessions, sessions.c.sid == refresh_families.c.sid))
                .where(refresh_tokens.c.token_hash == token_hash))
        row = await self._one(stmt)
        if row is None:
            return None
        part = {prefix: {k[2:]: v for k, v in row.items() if k.startswith(prefix)}
                for prefix, _ in tables}
        return _refresh(part["t_"]), _family(part["f_"]), _session(part["s_"])

    async def rotate(self, token_hash: str, *, successor_hash: str, at: float) -> bool:
        result = await self.conn.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.token_hash == token_hash,
                   refresh_tokens.c.rotated_at.is_(None))
            .values(rotated_at=at, successor_hash=successor_hash))
        return bool(result.rowcount)

    async def revoke_family(self, family_id: str, *, at: float, reason: str) -> bool:
        result = await self.conn.execute(
            update(refresh_families)
            .where(refresh_families.c.family_id == family_id,
                   refresh_families.c.revoked_at.is_(None))
            .values(revoked_at=at, revoke_reason=reason))
        return bool(result.rowcount)

    async def families_for_session(self, sid: str) -> list[RefreshFamily]:
        rows = await self.conn.execute(select(refresh_families)
                                       .where(refresh_families.c.sid == sid))
        return [_family(r) for r in rows.mappings()]

    async def revoke_families_of(self, sids: Sequence[str], *, at: float,
                                 reason: str) -> list[RefreshFamily]:
        if not sids:
            return []
        result = await self.conn.execute(
            update(refresh_families)
            .where(refresh_families.c.sid.in_(sids), refresh_families.c.revoked_at.is_(None))
            .values(revoked_at=at, revoke_reason=reason).returning(*refresh_families.c))
        families = [_family(r) for r in result.mappings()]
        families.sort(key=lambda f: (f.created_at, f.family_id))
        return families

    async def families_for_sessions(self, sids: Sequence[str]) -> list[RefreshFamily]:
        if not sids:
            return []
        rows = await self.conn.execute(
            select(refresh_families).where(refresh_families.c.sid.in_(sids))
            .order_by(refresh_families.c.created_at, refresh_families.c.family_id))
        return [_family(r) for r in rows.mappings()]

    async def active_families_for_client(self, client_id: str) -> list[RefreshFamily]:
        rows = await self.conn.execute(
            select(refresh_families).where(refresh_families.c.client_id == client_id,
                                           refresh_families.c.revoked_at.is_(None))
            .order_by(refresh_families.c.created_at, refresh_families.c.family_id))
        return [_family(r) for r in rows.mappings()]

    async def last_refreshed(self, family_ids: Sequence[str]) -> dict[str, float]:
        if not family_ids:
            return {}
        rows = await self.conn.execute(
            select(refresh_tokens.c.family_id, func.max(refresh_tokens.c.issued_at))
            .where(refresh_tokens.c.family_id.in_(family_ids),
                   refresh_tokens.c.generation > 0)
            .group_by(refresh_tokens.c.family_id))
        return {str(family_id): float(at) for family_id, at in rows}


class SqlUnitOfWork:
    """All repositories bound to one connection and therefore one transaction."""

    def __init__(self, conn: AsyncConnection, *, read_only: bool = False) -> None:
        self.conn = conn
        """The transaction's connection (for statements that span repositories)."""
        self.clients: ports.ClientRepo = SqlClientRepo(conn)
        self.users: ports.UserRepo = SqlUserRepo(conn)
        self.sessions: ports.SessionRepo = SqlSessionRepo(conn)
        self.factors: ports.FactorRepo = SqlFactorRepo(conn)
        self.codes: ports.CodeRepo = SqlCodeRepo(conn)
        self.refresh: ports.RefreshRepo = SqlRefreshRepo(conn)
        self._outbox = SqlRevocationLog(conn)
        self.revocations: ports.RevocationLog = self._outbox
        self.audit: ports.AuditRepo = SqlAuditRepo(conn)
        self.keys: ports.KeyRepo = SqlKeyRepo(conn, read_only=read_only)
        self.tenants: ports.TenantRepo = SqlTenantRepo(conn)
        self.roles: ports.RoleRepo = SqlRoleRepo(conn)
        self.consents: ports.ConsentRepo = SqlConsentRepo(conn)
        self.recovery_codes: ports.RecoveryCodeRepo = SqlRecoveryCodeRepo(conn)
        self.verifiers: ports.VerifierRegistry = SqlVerifierRegistry(conn)
        self.federation: ports.FederationRepo = SqlFederationRepo(conn)
        self.session_policies: ports.SessionPolicyRepo = SqlSessionPolicyRepo(conn)
        self.device_codes: ports.DeviceCodeRepo = SqlDeviceCodeRepo(conn)
        self.reference_tokens: ports.ReferenceTokenRepo = SqlReferenceTokenRepo(conn)
        self.assertion_jtis: ports.AssertionReplayRepo = SqlAssertionReplayRepo(conn)
        self.signals: ports.SignalRepo = SqlSignalRepo(conn)

    @property
    def outbox_appended(self) -> list[RevocationEvent]:
        """The revocation events this unit appended, seqs assigned (empty: none)."""
        return self._outbox.appended
