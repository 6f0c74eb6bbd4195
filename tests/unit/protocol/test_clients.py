"""Client authentication (RFC 6749 §2.3, §5.2) and the client cache, with an in-memory
store stand-in: one method per request, constant-time secret checks with the same work
for unknown clients, and Basic parsing that refuses anything malformed as invalid_client."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

import tessera.protocol.clients as clients_module
from tessera.core.clients import Client
from tessera.core.clock import FixedClock
from tessera.core.secrets import token_hash
from tessera.protocol.clients import ClientAuthenticator, ClientDirectory, _basic_credentials
from tessera.protocol.errors import InvalidClient, InvalidRequest
from tessera.protocol.http import OAuthRequest, Params

SECRET = "s3cret-value-with-enough-entropy"


def _client(client_id: str, **kw: Any) -> Client:
    values: dict[str, Any] = {"name": client_id, "public": False,
                              "grant_types": frozenset({"client_credentials"}),
                              "scopes": frozenset(), "secret_hash": token_hash(SECRET)}
    values.update(kw)
    return Client(client_id=client_id, **values)


class FakeStore:
    """Just enough of ``Store`` for the directory: counts reads."""

    def __init__(self, *found: Client) -> None:
        self.clients = {c.client_id: c for c in found}
        self.reads = 0

    @contextlib.asynccontextmanager
    async def unit_of_work(self, *, read_only: bool = False) -> AsyncIterator[Any]:
        async def get(client_id: str) -> Client | None:
            self.reads += 1
            return self.clients.get(client_id)
        yield SimpleNamespace(clients=SimpleNamespace(get=get))


CLIENTS = (_client("conf"), _client("pub", public=True, secret_hash=None),
           _client("off", disabled=True), _client("pub-off", public=True, secret_hash=None,
                                                  disabled=True))


def authenticator(clock: FixedClock | None = None) -> ClientAuthenticator:
    store = FakeStore(*CLIENTS)
    return ClientAuthenticator(ClientDirectory(store, clock or FixedClock(), ttl=5.0))  # type: ignore[arg-type]


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


async def auth(pairs: list[tuple[str, str]], authorization: str | None = None,
               **kw: bool) -> Client:
    headers = {"authorization": authorization} if authorization else {}
    request = OAuthRequest(method="POST", url="http://x/token", headers=headers)
    return await authenticator().authenticate(request, Params(pairs), **kw)


# --- success --------------------------------------------------------------------------

async def test_client_secret_basic_and_post() -> None:
    assert (await auth([], basic("conf", SECRET))).client_id == "conf"
    assert (await auth([("client_id", "conf")], basic("conf", SECRET))).client_id == "conf"
    assert (await auth([("client_id", "conf"), ("client_secret", SECRET)])).client_id == "conf"
    assert (await auth([], "basic " + basic("conf", SECRET)[6:])).client_id == "conf"


async def test_public_client_by_id_only_where_allowed() -> None:
    assert (await auth([("client_id", "pub")])).client_id == "pub"
    with pytest.raises(InvalidClient):
        await auth([("client_id", "pub")], allow_public=False)


# --- refusals -------------------------------------------------------------------------

@pytest.mark.parametrize(("pairs", "authorization"), [
    ([], None),
    ([("client_id", "conf")], None),
    ([("client_id", "conf"), ("client_secret", SECRET + "x")], None),
    ([("client_id", "nobody"), ("client_secret", SECRET)], None),
    ([("client_id", "off"), ("client_secret", SECRET)], None),
    ([("client_id", "pub-off")], None),
    ([("client_id", "pub"), ("client_secret", "anything")], None),
    ([], basic("conf", "")),
    ([], basic("nobody", SECRET)),
    ([], basic("off", SECRET)),
    ([], basic("pub", SECRET)),
], ids=["nothing", "confidential-without-secret", "wrong-secret", "unknown", "disabled",
        "disabled-public", "public-with-secret", "basic-empty-secret", "basic-unknown",
        "basic-disabled", "basic-public"])
async def test_authentication_failures_are_invalid_client(
        pairs: list[tuple[str, str]], authorization: str | None) -> None:
    with pytest.raises(InvalidClient) as exc:
        await auth(pairs, authorization)
    assert exc.value.description in {"client authentication failed",
                                     "client authentication required"}
    assert exc.value.basic == (authorization is not None)


async def test_one_method_per_request() -> None:
    with pytest.raises(InvalidRequest, match="one client authentication method"):
        await auth([("client_secret", SECRET)], basic("conf", SECRET))
    with pytest.raises(InvalidRequest, match="does not match"):
        await auth([("client_id", "pub")], basic("conf", SECRET))


@pytest.mark.parametrize("header", [
    "Basic !!!", "Basic ", "Basic " + base64.b64encode(b"no-colon").decode(),
    "Basic " + base64.b64encode(b":secret").decode(), "Basic \u00fc\u00e9",
    "Basic " + base64.b64encode(b"\xff:\xfe").decode(), "Basic YQ",
    "Basic " + base64.b64encode(b"a%00b:s").decode(),
    "Basic " + base64.b64encode(b"a:s%0d%0aX-Injected: 1").decode(),
    "Basic " + base64.b64encode(b"a\nb:s").decode(),
], ids=["not-base64", "empty", "no-colon", "empty-id", "non-ascii", "not-utf8",
        "bad-padding", "encoded-nul", "encoded-crlf", "raw-newline"])
def test_malformed_basic_is_invalid_client_with_basic_challenge(header: str) -> None:
    with pytest.raises(InvalidClient) as exc:
        _basic_credentials(header)
    assert exc.value.basic and exc.value.description == "malformed Basic credentials"


def test_basic_parts_are_form_urldecoded() -> None:
    """RFC 6749 §2.3.1: a colon in the secret survives (it was encoded as %3A)."""
    assert _basic_credentials(basic("my+app", "p%3Ass%2Bw+d")) == ("my app", "p:ss+w d")
    assert _basic_credentials(basic("app", "a:b")) == ("app", "a:b")


# --- constant time --------------------------------------------------------------------

@pytest.mark.parametrize("client_id", ["conf", "nobody", "off", "pub"])
async def test_secret_check_does_the_same_work_for_every_client(
        monkeypatch: pytest.MonkeyPatch, client_id: str) -> None:
    """Unknown, disabled and public clients still hash the secret and compare it in
    constant time against a dummy, so response timing does not reveal which ids exist."""
    compared: list[tuple[str, str]] = []
    real = clients_module.constant_time_equal

    def spy(a: str, b: str) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(clients_module, "constant_time_equal", spy)
    with pytest.raises(InvalidClient):
        await auth([("client_id", client_id), ("client_secret", SECRET + "!")])
    assert compared == [(token_hash(SECRET + "!"),
                         token_hash(SECRET) if client_id in {"conf", "off"}
                         else clients_module._DUMMY_HASH)]


# --- the directory --------------------------------------------------------------------

async def test_directory_caches_hits_for_ttl_and_never_caches_misses() -> None:
    clock = FixedClock(1000.0)
    store = FakeStore(_client("conf"))
    directory = ClientDirectory(store, clock, ttl=5.0)  # type: ignore[arg-type]
    assert await directory.get("conf") is not None
    assert await directory.get("conf") is not None
    assert store.reads == 1
    clock.advance(5.0)
    await directory.get("conf")
    assert store.reads == 2
    assert await directory.get("late") is None
    store.clients["late"] = _client("late")
    assert await directory.get("late") is not None  # a new client works at once
    directory.forget("conf")
    await directory.get("conf")
    assert store.reads == 5
