"""Pure rules of the trust model: which roles entitle which privileged scopes, how a
delegated scope is narrowed, what a reach covers, what consent is missing."""

from __future__ import annotations

import pytest

from tessera.core.consents import Consent, missing_consent
from tessera.core.roles import (
    ADMIN_SCOPE,
    EVENTS_SCOPE,
    IMPERSONATE_SCOPE,
    ROLES,
    SUPPORT_SCOPE,
    Reach,
    entitled,
    is_privileged,
    narrow_to_entitlement,
)
from tessera.core.tenants import Tenant, tenant_of


def test_role_names_are_the_contract() -> None:
    assert frozenset({"tenant-admin", "impersonator", "support", "platform-admin"}) == ROLES


@pytest.mark.parametrize(("roles", "scopes"), [
    ((), set()),
    (("support",), {SUPPORT_SCOPE}),
    (("impersonator",), {IMPERSONATE_SCOPE}),
    (("tenant-admin",), {ADMIN_SCOPE, SUPPORT_SCOPE}),
    (("platform-admin",), {ADMIN_SCOPE, SUPPORT_SCOPE, EVENTS_SCOPE}),
    (("support", "impersonator"), {SUPPORT_SCOPE, IMPERSONATE_SCOPE}),
    (("no-such-role",), set()),
])
def test_roles_entitle_privileged_scopes(roles: tuple[str, ...], scopes: set[str]) -> None:
    assert entitled(roles) == scopes


def test_every_tessera_scope_is_privileged_and_only_those() -> None:
    assert is_privileged("tessera:admin") and is_privileged("tessera:anything-new")
    assert not is_privileged("openid") and not is_privileged("orders:read")
    assert not is_privileged("admin") and not is_privileged("xtessera:admin")


def test_narrowing_keeps_ordinary_scopes_and_drops_unentitled_privilege() -> None:
    asked = frozenset({"openid", "api:read", ADMIN_SCOPE, IMPERSONATE_SCOPE,
                       "tessera:unknown"})
    assert narrow_to_entitlement(asked, ()) == {"openid", "api:read"}
    assert narrow_to_entitlement(asked, ("impersonator",)) == {"openid", "api:read",
                                                                IMPERSONATE_SCOPE}
    assert narrow_to_entitlement(asked, ("platform-admin",)) == {"openid", "api:read",
                                                                  ADMIN_SCOPE}


def test_reach_covers_the_own_tenant_unless_platform() -> None:
    admin = Reach("u1", "acme", frozenset({"tenant-admin"}))
    assert admin.covers("acme") and not admin.covers("globex") and not admin.platform
    assert admin.may(ADMIN_SCOPE) and not admin.may(EVENTS_SCOPE)
    platform = Reach("u2", "default", frozenset({"platform-admin"}))
    assert platform.platform and platform.covers("acme") and platform.covers("globex")
    support = Reach("u3", "acme", frozenset({"support"}))
    assert support.may(SUPPORT_SCOPE) and not support.may(ADMIN_SCOPE)


def test_missing_consent() -> None:
    asked = frozenset({"openid", "api:read"})
    assert missing_consent(asked, None) == asked
    given = Consent("u", "c", frozenset({"openid", "api:read", "api:write"}), 0.0)
    assert missing_consent(asked, given) == frozenset()
    assert missing_consent(asked | {"mail"}, given) == {"mail"}


def test_tenants() -> None:
    assert Tenant("t", "T", 1.0).active
    assert not Tenant("t", "T", 1.0, suspended_at=2.0).active
    assert tenant_of(None, "default") == "default" and tenant_of("acme", "default") == "acme"
