"""Administration of upstream providers (``tessera idps``): register, list, show,
disable, remove, link a user. Shared by the CLI; every change is audited."""

from __future__ import annotations

import re
from typing import Any

from tessera.application.admin import AdminError, register_tenant
from tessera.application.transaction import transaction
from tessera.core.federation import IdentityProvider
from tessera.core.users import DEFAULT_TENANT
from tessera.identity.compose import Identity
from tessera.identity.federation.mapping import ClaimMapping, MappingError, load_mapping
from tessera.identity.federation.service import (
    FederationError,
    new_idp_id,
    provider_urls,
    secret_context,
)
from tessera.identity.federation.upstream import issuer_allowed
from tessera.keys import Sealer
from tessera.observability import events

__all__ = ["DEFAULT_SCOPE", "add_provider", "delete_provider", "disable_provider",
           "get_provider", "link_user", "list_providers", "provider_json"]

DEFAULT_SCOPE = "openid email profile"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def provider_json(identity: Identity, provider: IdentityProvider) -> dict[str, Any]:
    """What ``idps add`` and ``idps show`` print (never the client secret)."""
    return {"name": provider.name, "idp_id": provider.idp_id, "tenant_id": provider.tenant_id,
            "issuer": provider.issuer, "client_id": provider.client_id,
            "scope": provider.scope, "disabled": provider.disabled,
            "mapping": provider.mapping, "ssf_poll_url": provider.ssf_poll_url,
            **provider_urls(identity.settings.issuer, provider.idp_id)}


async def add_provider(identity: Identity, *, name: str, issuer: str, client_id: str,
                       client_secret: str, tenant_id: str = DEFAULT_TENANT,
                       scope: str = DEFAULT_SCOPE, mapping_text: str | None = None,
                       idp_id: str | None = None, ssf_poll_url: str | None = None
                       ) -> IdentityProvider:
    """Register a provider. ``idp_id`` (default: a new random one) fixes its URLs in
    advance, for a provider that must know ``redirect_uri`` before it issues the client
    id (dynamic registration)."""
    if not _NAME.match(name):
        raise AdminError("a provider name is 1 to 64 of a-z, 0-9, '.', '_', '-'")
    issuer = issuer.rstrip("/")
    if not issuer_allowed(identity.settings.issuer, issuer):
        raise AdminError("the issuer must be an https URL without query or fragment (http "
                         "only on loopback while Tessera's own issuer is http on loopback)")
    if not client_id or len(client_id) > 255:
        raise AdminError("the client id is 1 to 255 characters")
    if not client_secret:
        raise AdminError("the client secret is empty (give it on standard input)")
    if ssf_poll_url is not None and not issuer_allowed(identity.settings.issuer,
                                                       ssf_poll_url.rstrip("/")):
        raise AdminError("the SSF poll URL must be https (http only on loopback, as the "
                         "issuer)")
    if "openid" not in scope.split():
        raise AdminError("the scope must contain openid")
    try:
        mapping = load_mapping(mapping_text) if mapping_text is not None else ClaimMapping()
    except MappingError as exc:
        raise AdminError(f"bad mapping: {exc}") from None
    idp_id = idp_id or new_idp_id()
    sealer = Sealer.from_b64(identity.settings.key_encryption_key())
    provider = IdentityProvider(
        idp_id=idp_id, tenant_id=tenant_id, name=name, issuer=issuer, client_id=client_id,
        sealed_secret=sealer.seal(client_secret.encode(), context=secret_context(idp_id)),
        scope=" ".join(scope.split()), mapping=mapping.model_dump(mode="json"),
        created_at=identity.clock.now(), ssf_poll_url=ssf_poll_url)
    async with transaction(identity.store, identity.audit) as tx:
        await register_tenant(tx, tenant_id, at=provider.created_at)
        if not await tx.uow.federation.add_provider(provider):
            raise AdminError(f"tenant {tenant_id!r} already has a provider named {name!r}")
        tx.audit(events.IDP_CREATED, tenant_id=tenant_id, idp=name, issuer=issuer,
                 actor="cli")
    return provider


async def get_provider(identity: Identity, name: str, tenant_id: str) -> IdentityProvider:
    async with identity.store.unit_of_work(read_only=True) as uow:
        provider = await uow.federation.provider(tenant_id, name)
    if provider is None:
        raise AdminError(f"no provider {name!r} in tenant {tenant_id!r}")
    return provider


async def list_providers(identity: Identity, tenant_id: str | None) -> list[IdentityProvider]:
    async with identity.store.unit_of_work(read_only=True) as uow:
        return await uow.federation.providers(tenant_id)


async def disable_provider(identity: Identity, name: str, tenant_id: str) -> IdentityProvider:
    """No new logins through it; sessions opened through it stay (revoke them with
    ``tessera revoke``), and its logout tokens are no longer accepted."""
    provider = await get_provider(identity, name, tenant_id)
    async with transaction(identity.store, identity.audit) as tx:
        await tx.uow.federation.set_provider_disabled(provider.idp_id, True)
        tx.audit(events.IDP_DISABLED, tenant_id=tenant_id, idp=name, actor="cli")
    return await get_provider(identity, name, tenant_id)


async def delete_provider(identity: Identity, name: str, tenant_id: str) -> None:
    provider = await get_provider(identity, name, tenant_id)
    async with transaction(identity.store, identity.audit) as tx:
        await tx.uow.federation.delete_provider(provider.idp_id)
        tx.audit(events.IDP_DELETED, tenant_id=tenant_id, idp=name, actor="cli")


async def link_user(identity: Identity, name: str, tenant_id: str, *, subject: str,
                    user_id: str) -> bool:
    """An administrator's link: the upstream ``subject`` signs in as ``user_id``."""
    provider = await get_provider(identity, name, tenant_id)
    async with identity.store.unit_of_work(read_only=True) as uow:
        user = await uow.users.get(user_id)
    if user is None or user.deleted_at is not None:
        raise AdminError(f"no user {user_id!r}")
    if not subject or len(subject) > 255:
        raise AdminError("the subject is 1 to 255 characters")
    try:
        return await identity.federation.link(provider, subject, user, actor="cli")
    except FederationError as exc:
        raise AdminError(exc.reason) from None
