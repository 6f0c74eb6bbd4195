"""Builders for store contract tests: valid aggregates with unique ids, written through
the port (never through SQL), so the suite runs unchanged on every store."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from tessera.core.clients import Client
from tessera.core.refresh import RefreshFamily, RefreshToken
from tessera.core.revocation import RevocationEvent, RevocationKind
from tessera.core.sessions import AuthorizationCode, Session
from tessera.core.users import User
from tessera.store.ports import Store

NOW = 1_800_000_000.5


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def a_user(*, tenant_id: str = "default", username: str | None = None) -> User:
    return User(user_id=uid("u"), username=username or uid("name"), tenant_id=tenant_id,
                password_hash="$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA", created_at=NOW)


def a_session(user: User, *, sv: int = 1) -> Session:
    return Session(sid=uid("sid"), user_id=user.user_id, tenant_id=user.tenant_id, sv=sv,
                   acr="urn:tessera:acr:pwd", amr=("pwd",), auth_time=NOW, created_at=NOW,
                   last_seen_at=NOW, user_agent="contract")


def a_family(session: Session, *, client_id: str = "app") -> RefreshFamily:
    return RefreshFamily(family_id=uid("fam"), sid=session.sid, client_id=client_id,
                         user_id=session.user_id, tenant_id=session.tenant_id,
                         scope=frozenset({"openid", "api:read"}),
                         audience=("https://api.example",), created_at=NOW,
                         expires_at=NOW + 86400)


def a_token(family: RefreshFamily, *, generation: int = 0) -> RefreshToken:
    return RefreshToken(token_hash=uid("rt"), family_id=family.family_id,
                        generation=generation, issued_at=NOW, expires_at=NOW + 3600,
                        access_jti=uid("jti"))


def a_code(session: Session, *, client_id: str = "app") -> AuthorizationCode:
    return AuthorizationCode(code_hash=uid("code"), client_id=client_id, sid=session.sid,
                             user_id=session.user_id, redirect_uri="https://app.example/cb",
                             scope=frozenset({"openid"}), code_challenge="x" * 43,
                             nonce="n-1", expires_at=NOW + 60)


def a_client(**overrides: object) -> Client:
    values: dict[str, object] = {
        "client_id": uid("client"), "name": "contract app", "public": False,
        "grant_types": frozenset({"authorization_code", "refresh_token"}),
        "scopes": frozenset({"openid", "api:read"}), "audiences": ("https://api.example",),
        "redirect_uris": ("https://app.example/cb",),
        "post_logout_redirect_uris": ("https://app.example/bye",),
        "secret_hash": "0" * 64, "tenant_id": "default", "created_at": NOW,
    }
    values.update(overrides)
    return Client(**values)  # type: ignore[arg-type]


def an_event(key: str | None = None, *, kind: str = RevocationKind.TOKEN_REVOKED,
             data: dict[str, object] | None = None) -> RevocationEvent:
    return RevocationEvent(kind=kind, key=key or uid("jti"), at=NOW, expires_at=NOW + 300,
                           data=dict(data or {}))


@dataclass
class Graph:
    """A user with one session, one refresh family and its generation-0 token."""

    user: User
    session: Session
    family: RefreshFamily
    token: RefreshToken


async def seed(store: Store) -> Graph:
    user = a_user()
    session = a_session(user)
    family = a_family(session)
    token = a_token(family)
    async with store.unit_of_work() as uow:
        await uow.users.add(user)
        await uow.sessions.add(session, browser_handle_hash=uid("bh"))
        await uow.refresh.add_family(family)
        await uow.refresh.add_token(token)
    return Graph(user, session, family, token)


@pytest.fixture
async def graph(any_store: Store) -> Graph:
    return await seed(any_store)
