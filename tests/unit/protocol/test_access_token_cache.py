"""The identity service's side of the verified-token cache (``AccessTokenIssuer``): a
resource server introspecting the same token again costs no signature check; a refused
token is never remembered; a key rotation makes every remembered token a full check."""

from __future__ import annotations

from typing import Any

import pytest

from tessera.keys import KeyRing, KeyState, RingHolder, new_signing_key
from tessera.protocol.rfc9068 import cache as cache_module
from tessera.protocol.rfc9068.access_token import AccessTokenClaims, AccessTokenIssuer
from tessera.protocol.rfc9068.token import Reason, TokenRejected

NOW = 1_800_000_000.0
ISSUER = "https://id.example"


def _ring(n: int = 1) -> KeyRing:
    return KeyRing([new_signing_key("ES256", state=KeyState.ACTIVE, now=NOW - 1000 - n)])


def _claims(**changes: Any) -> AccessTokenClaims:
    base: dict[str, Any] = dict(sub="u-1", client_id="c-1", audience=("orders",),
                                scope=frozenset({"orders:read"}), iat=int(NOW),
                                exp=int(NOW) + 300, jti="j-1", tenant_id="t-1")
    return AccessTokenClaims(**{**base, **changes})


def _count_signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = cache_module.verify_signed

    def counting(token: str, keys: Any) -> Any:
        calls.append(token)
        return real(token, keys)

    monkeypatch.setattr(cache_module, "verify_signed", counting)
    return calls


def test_a_repeat_skips_the_signature_check_but_not_the_claims(
        monkeypatch: pytest.MonkeyPatch) -> None:
    issuer = AccessTokenIssuer(RingHolder(_ring()), issuer=ISSUER, ttl=300)
    token = issuer.sign(_claims())
    calls = _count_signature_checks(monkeypatch)
    assert issuer.verify(token, now=NOW, leeway=0).jti == "j-1"
    assert issuer.verify(token, now=NOW + 1, leeway=0).jti == "j-1"
    assert len(calls) == 1
    with pytest.raises(TokenRejected) as refused:  # times and audience: every call
        issuer.verify(token, now=NOW + 301, leeway=0)
    assert refused.value.reason is Reason.EXPIRED
    with pytest.raises(TokenRejected) as refused:
        issuer.verify(token, now=NOW, leeway=0, audience="billing")
    assert refused.value.reason is Reason.WRONG_AUDIENCE
    assert len(calls) == 1


def test_a_refused_token_is_not_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    issuer = AccessTokenIssuer(RingHolder(_ring()), issuer=ISSUER, ttl=300)
    token = issuer.sign(_claims(exp=int(NOW) - 100))
    calls = _count_signature_checks(monkeypatch)
    for _ in range(2):
        with pytest.raises(TokenRejected):
            issuer.verify(token, now=NOW, leeway=0)
    assert len(calls) == 2


def test_a_new_ring_makes_remembered_tokens_a_full_check(
        monkeypatch: pytest.MonkeyPatch) -> None:
    holder = RingHolder(_ring())
    issuer = AccessTokenIssuer(holder, issuer=ISSUER, ttl=300)
    token = issuer.sign(_claims())
    calls = _count_signature_checks(monkeypatch)
    issuer.verify(token, now=NOW, leeway=0)
    holder.ring = _ring(n=2)  # rotation: the old kid is gone
    with pytest.raises(TokenRejected) as refused:
        issuer.verify(token, now=NOW, leeway=0)
    assert refused.value.reason is Reason.UNKNOWN_KID
    assert len(calls) == 2
