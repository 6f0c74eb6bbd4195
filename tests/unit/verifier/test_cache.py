"""The verified-token cache skips signature work only; every other check still runs."""

from __future__ import annotations

from typing import Any

import pytest

from tessera import jose
from tessera.verifier import (
    Denied,
    KeySet,
    Reason,
    VerificationPolicy,
    VerifiedTokenCache,
    verify_access_token,
)
from tessera.verifier.revocation import RevocationState

from ._support import NOW, Minter, policy


def run(token: str, keys: KeySet, cache: VerifiedTokenCache, state: RevocationState, *,
        now: float = NOW, pol: VerificationPolicy | None = None) -> Any:
    return verify_access_token(token, keys=keys, policy=pol or policy(), revocation_state=state,
                               now=now, cache=cache)


def reason(token: str, keys: KeySet, cache: VerifiedTokenCache, state: RevocationState,
           **kwargs: Any) -> Reason:
    with pytest.raises(Denied) as info:
        run(token, keys, cache, state, **kwargs)
    return info.value.reason


def forbid_signature_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, any signature verification fails the test: only cache hits pass."""

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("signature verified again")

    monkeypatch.setattr(jose, "verify", boom)


def test_repeat_presentation_is_a_hit(minter: Minter, keys: KeySet,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cache, state = VerifiedTokenCache(), RevocationState()
    token = minter.mint()
    first = run(token, keys, cache, state)
    assert (cache.hits, cache.misses, len(cache)) == (0, 1, 1)
    monkeypatch.setattr(jose, "verify", None)
    assert run(token, keys, cache, state) is first
    assert cache.hits == 1


def test_hit_still_enforces_expiry_revocation_version_and_staleness(
    minter: Minter, keys: KeySet, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, state = VerifiedTokenCache(), RevocationState()
    tokens = [minter.mint(iat=int(NOW) - 5, jti=f"cached-{i}") for i in range(5)]
    for t in tokens:
        run(t, keys, cache, state)
    forbid_signature_checks(monkeypatch)

    assert reason(tokens[0], keys, cache, state, now=NOW + 400) is Reason.EXPIRED
    state.apply({"seq": 1, "kind": "token.revoked", "key": "cached-1",
                 "at": NOW, "expires_at": NOW + 600})
    assert reason(tokens[1], keys, cache, state) is Reason.TOKEN_REVOKED
    state.apply({"seq": 2, "kind": "session.version_bumped", "key": "sid-1", "at": NOW,
                 "expires_at": NOW + 600, "data": {"sv": 2}})
    assert reason(tokens[2], keys, cache, state) is Reason.STALE_SESSION_VERSION
    state.apply({"seq": 3, "kind": "session.revoked", "key": "sid-1", "at": NOW,
                 "expires_at": NOW + 600})
    assert reason(tokens[3], keys, cache, state) is Reason.SESSION_REVOKED

    fresh = RevocationState()
    assert reason(tokens[4], keys, cache, fresh, pol=policy(max_staleness=10)) is (
        Reason.STALE_STATE
    )
    assert reason(tokens[4], keys, cache, fresh, pol=policy(audience="billing-x")) is (
        Reason.WRONG_AUDIENCE
    )
    assert reason(tokens[4], keys, cache, fresh, pol=policy(issuer="https://other")) is (
        Reason.WRONG_ISSUER
    )
    assert reason(tokens[4], keys, cache, fresh, pol=policy(required_scopes={"admin"})) is (
        Reason.INSUFFICIENT_SCOPE
    )
    fresh.apply({"seq": 1, "kind": "user.revoked", "key": "user-1", "at": NOW,
                 "expires_at": NOW + 600})
    assert reason(tokens[4], keys, cache, fresh) is Reason.USER_REVOKED
    assert run(tokens[4], keys, cache, RevocationState()).jti == "cached-4"
    assert cache.misses == 5 and cache.hits >= 9


def test_hit_is_refused_when_the_key_for_its_kid_changed(minter: Minter, keys: KeySet) -> None:
    cache, state = VerifiedTokenCache(), RevocationState()
    token = minter.mint("ed-1")
    run(token, keys, cache, state)
    without_ed = KeySet([k for k in keys if k.kid != "ed-1"])
    assert reason(token, without_ed, cache, state) is Reason.UNKNOWN_KID
    assert len(cache) == 0
    assert run(token, keys, cache, state).kid == "ed-1"


def test_denied_tokens_are_not_cached(minter: Minter, keys: KeySet) -> None:
    cache, state = VerifiedTokenCache(), RevocationState()
    reason(minter.mint(aud="elsewhere"), keys, cache, state)
    reason(minter.mint()[:-4] + "AAAA", keys, cache, state)
    assert len(cache) == 0


def test_lru_is_bounded(minter: Minter, keys: KeySet) -> None:
    cache, state = VerifiedTokenCache(maxsize=3), RevocationState()
    tokens = [minter.mint("ed-1") for _ in range(4)]
    for t in tokens[:3]:
        run(t, keys, cache, state)
    run(tokens[0], keys, cache, state)  # refresh 0: 1 is now the oldest
    run(tokens[3], keys, cache, state)
    assert len(cache) == 3 and cache.maxsize == 3
    assert cache.get(tokens[1]) is None
    assert cache.get(tokens[0]) is not None and cache.get(tokens[3]) is not None
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError):
        VerifiedTokenCache(maxsize=0)


def test_revocation_check_is_skipped_only_while_the_state_is_unchanged(
        minter: Minter, keys: KeySet, monkeypatch: pytest.MonkeyPatch) -> None:
    from tessera.verifier import _verify

    cache, state = VerifiedTokenCache(), RevocationState()
    token = minter.mint(jti="same-state")
    run(token, keys, cache, state)
    real = _verify.check_revocation
    calls: list[str] = []

    def counted(verified: Any, source: Any) -> None:
        calls.append(verified.jti)
        real(verified, source)

    monkeypatch.setattr(_verify, "check_revocation", counted)
    run(token, keys, cache, state)
    run(token, keys, cache, state)
    assert calls == [], "same token, same state generation: the answer cannot differ"
    state.apply({"seq": 1, "kind": "token.revoked", "key": "other", "at": NOW,
                 "expires_at": NOW + 600})
    run(token, keys, cache, state)
    assert calls == ["same-state"], "the state changed: checked again"
    state.prune(NOW + 10_000)  # only forgets: still skipped
    run(token, keys, cache, state)
    assert calls == ["same-state"]
    state.load_snapshot({"seq": 5, "events": [
        {"seq": 5, "kind": "token.revoked", "key": "same-state", "at": NOW,
         "expires_at": NOW + 600}]})
    assert reason(token, keys, cache, state) is Reason.TOKEN_REVOKED


def test_a_pass_under_one_state_is_no_pass_under_another(minter: Minter,
                                                        keys: KeySet) -> None:
    cache, lenient, strict = VerifiedTokenCache(), RevocationState(), RevocationState()
    token = minter.mint(jti="two-states")
    strict.apply({"seq": 1, "kind": "token.revoked", "key": "two-states", "at": NOW,
                  "expires_at": NOW + 600})
    run(token, keys, cache, lenient)
    assert reason(token, keys, cache, strict) is Reason.TOKEN_REVOKED
