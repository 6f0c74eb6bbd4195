"""Federation tables over one connection inside one transaction: upstream identity
providers, links from upstream subjects to users, sessions opened through an upstream and
the replay memory of inbound tokens. Conditional writes are single statements."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import RowMapping

from tessera.core.federation import ExternalIdentity, IdentityProvider, UpstreamSession
from tessera.store.sql.schema import (
    external_identities,
    identity_providers,
    inbound_jtis,
    upstream_sessions,
)
from tessera.store.sql.trust import _Upserts

__all__ = ["SqlFederationRepo"]


def _provider(row: RowMapping) -> IdentityProvider:
    return IdentityProvider(
        idp_id=row["idp_id"], tenant_id=row["tenant_id"], name=row["name"],
        issuer=row["issuer"], client_id=row["client_id"], sealed_secret=row["sealed_secret"],
        scope=row["scope"], mapping=dict(row["mapping"]), disabled=row["disabled"],
        created_at=row["created_at"], ssf_poll_url=row["ssf_poll_url"])


def _link(row: RowMapping) -> ExternalIdentity:
    return ExternalIdentity(
        idp_id=row["idp_id"], subject=row["subject"], user_id=row["user_id"],
        profile=dict(row["profile"]), profile_hash=row["profile_hash"],
        linked_by=row["linked_by"], created_at=row["created_at"],
        updated_at=row["updated_at"])


class SqlFederationRepo(_Upserts):
    async def add_provider(self, provider: IdentityProvider) -> bool:
        result = await self.conn.execute(self._insert(identity_providers).values(
            idp_id=provider.idp_id, tenant_id=provider.tenant_id, name=provider.name,
            issuer=provider.issuer, client_id=provider.client_id,
            sealed_secret=provider.sealed_secret, scope=provider.scope,
            mapping=provider.mapping, disabled=provider.disabled,
            created_at=provider.created_at, ssf_poll_url=provider.ssf_poll_url
        ).on_conflict_do_nothing())
        return bool(result.rowcount)

    async def provider(self, tenant_id: str, name: str) -> IdentityProvider | None:
        row = await self._one(select(identity_providers).where(
            identity_providers.c.tenant_id == tenant_id, identity_providers.c.name == name))
        return _provider(row) if row else None

    async def provider_by_id(self, idp_id: str) -> IdentityProvider | None:
        row = await self._one(select(identity_providers).where(
            identity_providers.c.idp_id == idp_id))
        return _provider(row) if row else None

    async def providers(self, tenant_id: str | None = None) -> list[IdentityProvider]:
        stmt = select(identity_providers).order_by(identity_providers.c.tenant_id,
                                                   identity_providers.c.name)
        if tenant_id is not None:
            stmt = stmt.where(identity_providers.c.tenant_id == tenant_id)
        return [_provider(r) for r in (await self.conn.execute(stmt)).mappings()]

    async def set_provider_disabled(self, idp_id: str, disabled: bool) -> bool:
        result = await self.conn.execute(update(identity_providers).where(
            identity_providers.c.idp_id == idp_id).values(disabled=disabled))
        return bool(result.rowcount)

    async def delete_provider(self, idp_id: str) -> bool:
        await self.conn.execute(delete(external_identities).where(
            external_identities.c.idp_id == idp_id))
        await self.conn.execute(delete(upstream_sessions).where(
            upstream_sessions.c.idp_id == idp_id))
        await self.conn.execute(delete(inbound_jtis).where(inbound_jtis.c.idp_id == idp_id))
        result = await self.conn.execute(delete(identity_providers).where(
            identity_providers.c.idp_id == idp_id))
        return bool(result.rowcount)

    async def link(self, identity: ExternalIdentity) -> bool:
        result = await self.conn.execute(self._insert(external_identities).values(
            idp_id=identity.idp_id, subject=identity.subject, user_id=identity.user_id,
            profile=identity.profile, profile_hash=identity.profile_hash,
            linked_by=identity.linked_by, created_at=identity.created_at,
            updated_at=identity.updated_at).on_conflict_do_nothing())
        return bool(result.rowcount)

    async def linked(self, idp_id: str, subject: str) -> ExternalIdentity | None:
        row = await self._one(select(external_identities).where(
            external_identities.c.idp_id == idp_id, external_identities.c.subject == subject))
        return _link(row) if row else None

    async def update_profile(self, idp_id: str, subject: str, *, profile: dict[str, Any],
                             profile_hash: str, at: float) -> bool:
        result = await self.conn.execute(update(external_identities).where(
            external_identities.c.idp_id == idp_id, external_identities.c.subject == subject
        ).values(profile=profile, profile_hash=profile_hash, updated_at=at))
        return bool(result.rowcount)

    async def profile_of(self, user_id: str) -> dict[str, Any] | None:
        row = await self._one(select(external_identities).where(
            external_identities.c.user_id == user_id).order_by(
            external_identities.c.updated_at.desc()).limit(1))
        return dict(row["profile"]) if row else None

    async def add_upstream_session(self, session: UpstreamSession) -> None:
        stmt = self._insert(upstream_sessions).values(
            sid=session.sid, idp_id=session.idp_id, subject=session.subject,
            upstream_sid=session.upstream_sid)
        await self.conn.execute(stmt.on_conflict_do_update(
            index_elements=["sid"],
            set_={"idp_id": stmt.excluded.idp_id, "subject": stmt.excluded.subject,
                  "upstream_sid": stmt.excluded.upstream_sid}))

    async def upstream_session(self, sid: str) -> UpstreamSession | None:
        row = await self._one(select(upstream_sessions).where(upstream_sessions.c.sid == sid))
        if row is None:
            return None
        return UpstreamSession(sid=row["sid"], idp_id=row["idp_id"], subject=row["subject"],
                               upstream_sid=row["upstream_sid"])

    async def sessions_for_upstream(self, idp_id: str, *, upstream_sid: str | None = None,
                                    subject: str | None = None) -> list[str]:
        if upstream_sid is None and subject is None:
            return []
        stmt = select(upstream_sessions.c.sid).where(upstream_sessions.c.idp_id == idp_id)
        if upstream_sid is not None:
            stmt = stmt.where(upstream_sessions.c.upstream_sid == upstream_sid)
        if subject is not None:
            stmt = stmt.where(upstream_sessions.c.subject == subject)
        rows = await self.conn.execute(stmt.order_by(upstream_sessions.c.sid))
        return [str(r) for r in rows.scalars()]

    async def remember_jti(self, idp_id: str, jti: str, *, expires_at: float) -> bool:
        result = await self.conn.execute(self._insert(inbound_jtis).values(
            idp_id=idp_id, jti=jti, expires_at=expires_at).on_conflict_do_nothing())
        return bool(result.rowcount)

    async def prune_jtis(self, before: float) -> int:
        result = await self.conn.execute(delete(inbound_jtis).where(
            inbound_jtis.c.expires_at < before))
        return int(result.rowcount or 0)
