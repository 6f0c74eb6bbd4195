"""Who may present a token to the token exchange (RFC 8693) and with what proof
(RFC 9449 §7): the pure rules of ``rfc8693.subjects``."""

from __future__ import annotations

import pytest

from tessera.core.clients import Client
from tessera.protocol.rfc8693.subjects import NotPresentable, check_binding, check_presenter


def _client(client_id: str = "c_gw", trusted: tuple[str, ...] = ()) -> Client:
    return Client(client_id=client_id, name="gw", public=False, grant_types=frozenset(),
                  scopes=frozenset(), subject_audiences=trusted)


@pytest.mark.parametrize(("claims", "trusted", "actor", "ok"), [
    ({"aud": "c_gw", "client_id": "web"}, (), False, True),  # names it
    ({"aud": ["x", "c_gw"], "client_id": "web"}, (), False, True),
    ({"aud": "https://api", "client_id": "c_gw"}, (), False, True),  # issued to it
    ({"aud": "https://api", "client_id": "web"}, ("https://api",), False, True),  # trust
    ({"aud": ["https://other", "https://api"], "client_id": "web"}, ("https://api",),
     False, True),
    ({"aud": "https://api", "client_id": "web"}, (), False, False),
    ({"aud": "https://api", "client_id": "web"}, ("https://elsewhere",), False, False),
    ({"client_id": "web"}, ("https://api",), False, False),  # no audience at all
    # actor tokens: issued to it or naming it; configured trust does not stretch to them
    ({"aud": "c_gw", "client_id": "web"}, (), True, True),
    ({"aud": "https://api", "client_id": "c_gw"}, (), True, True),
    ({"aud": "https://api", "client_id": "web"}, ("https://api",), True, False),
])
def test_who_may_present_a_token(claims: dict[str, object], trusted: tuple[str, ...],
                                 actor: bool, ok: bool) -> None:
    client = _client(trusted=trusted)
    if ok:
        check_presenter(claims, client, actor=actor)
    else:
        with pytest.raises(NotPresentable):
            check_presenter(claims, client, actor=actor)


def test_a_bound_token_needs_a_proof_of_its_own_key() -> None:
    bound = {"cnf": {"jkt": "thumb-a"}}
    check_binding(bound, "thumb-a")
    check_binding({}, None)
    check_binding({}, "thumb-b")  # unbound: any (or no) proof
    for jkt in (None, "thumb-b", ""):
        with pytest.raises(NotPresentable):
            check_binding(bound, jkt)
    with pytest.raises(NotPresentable):
        check_binding({"cnf": {"jkt": 42}}, "42")
