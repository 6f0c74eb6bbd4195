"""Helpers shared by the end-to-end flows (drivers live in ``tests/support.py``)."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import httpx

from tessera.identity.compose import Identity
from tessera.store.ports import AuditRecord
from tests.support import AppClient, TesseraDriver
from tests.tokens import claims_of as claims_of  # re-exported: e2e tests import it from here

__all__ = ["admin_client", "audit_rows", "claims_of", "client_token", "form_fields",
           "last_seq", "logged_in", "published_kinds", "refresh", "revoke",
           "verifier_verdict"]


class _Inputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "input" and named.get("name") and named.get("type") == "hidden":
            self.fields[str(named["name"])] = named.get("value") or ""


def form_fields(html: str) -> dict[str, str]:
    """The hidden inputs of a page's form, as a browser would submit them."""
    parser = _Inputs()
    parser.feed(html)
    return parser.fields


async def audit_rows(identity: Identity, event: str | None = None,
                     limit: int = 1000) -> list[AuditRecord]:
    async with identity.store.unit_of_work(read_only=True) as uow:
        return await uow.audit.query(event=event, limit=limit)


async def logged_in(tessera: TesseraDriver, *, username: str = "alice",
                    **client_kw: Any) -> tuple[AppClient, dict[str, Any]]:
    """A confidential web client, a user and the tokens of one browser login."""
    app = await tessera.web_client(**client_kw)
    await tessera.user(username)
    return app, await tessera.login_tokens(app, username=username)


async def refresh(tessera: TesseraDriver, app: AppClient, token: str,
                  **data: str) -> httpx.Response:
    return await tessera.token(app, grant_type="refresh_token", refresh_token=token, **data)


async def revoke(tessera: TesseraDriver, app: AppClient, token: str,
                 **data: str) -> httpx.Response:
    if app.secret is None:
        data.setdefault("client_id", app.client_id)
    return await tessera.http.post("/revoke", data={"token": token, **data},
                                   auth=app.auth)  # type: ignore[arg-type]


async def admin_client(tessera: TesseraDriver, *, scope: str = "tessera:admin") -> AppClient:
    """A service client whose tokens are meant for the issuer itself (the admin API)."""
    return await tessera.client(scope=scope, audiences=())


async def client_token(tessera: TesseraDriver, app: AppClient, **data: str) -> str:
    response = await tessera.token(app, grant_type="client_credentials", **data)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def verifier_verdict(identity: Identity, token: str, audience: str) -> str | None:
    """What the verifier SDK says of ``token`` once it has applied every revocation event
    the identity service published (in order, as the bus delivers them): None when it
    accepts the token, else the reason it denies it."""
    from tessera.bus import event_to_wire
    from tessera.verifier import Denied, KeySet, VerificationPolicy, verify_access_token
    from tessera.verifier.revocation import RevocationState

    async with identity.store.unit_of_work(read_only=True) as uow:
        published = await uow.revocations.since(0, limit=100_000)
    state = RevocationState()
    for event in published:
        state.apply(event_to_wire(event))
    try:
        verify_access_token(token, keys=KeySet.from_jwks(identity.keys.ring.jwks()),
                            policy=VerificationPolicy(identity.settings.issuer, audience),
                            revocation_state=state, now=identity.clock.now())
    except Denied as exc:
        return exc.reason.value
    return None


async def published_kinds(identity: Identity, after: int) -> list[tuple[str, str]]:
    """(kind, key) of every revocation event published after sequence ``after``."""
    async with identity.store.unit_of_work(read_only=True) as uow:
        return [(e.kind, e.key) for e in await uow.revocations.since(after, limit=10_000)]


async def last_seq(identity: Identity) -> int:
    async with identity.store.unit_of_work(read_only=True) as uow:
        return await uow.revocations.last_seq()
