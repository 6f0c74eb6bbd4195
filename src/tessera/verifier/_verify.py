"""The decision: ``verify_access_token`` — a pure function of (token, keys, policy,
revocation state, now): the shared RFC 9068 validator (``tessera.protocol.rfc9068.validator``,
the same code the identity service runs) with the SDK's revocation state as its
``RevocationSource``, then what only a resource server asks.

Steps, in order (the first that fails decides the reason)::

    validator.verify_signed                    (skipped on a verified-token cache hit)
    → validator.check_claims → validator.check_revocation(token, revocation_state)
                                               (skipped on a cache hit while the state's
                                                generation is the one it last passed at)
    → check_freshness → check_scopes → check_user_authentication

Scopes come late so that a revoked or expired token is 401, never 403; the RFC 9470
step-up check (``policy.min_acr``/``max_auth_age``) last, so a client is only asked to
step up for a token that would otherwise be accepted.
"""

from __future__ import annotations

from tessera.protocol.rfc9068.cache import VerifiedTokenCache, verify_signed_cached
from tessera.protocol.rfc9068.token import TokenRejected
from tessera.protocol.rfc9068.validator import (
    ACCEPTED_TYPS,
    MAX_TOKEN_LENGTH,
    check_claims,
    check_revocation,
)
from tessera.verifier._claims import check_scopes, check_user_authentication
from tessera.verifier._keyset import KeySet
from tessera.verifier._policy import VerificationPolicy
from tessera.verifier._token import VerifiedToken
from tessera.verifier.errors import Denied, Reason
from tessera.verifier.revocation.state import RevocationState

__all__ = ["ACCEPTED_TYPS", "MAX_TOKEN_LENGTH", "verify_access_token"]

def verify_access_token(
    token: str,
    *,
    keys: KeySet,
    policy: VerificationPolicy,
    revocation_state: RevocationState,
    now: float,
    cache: VerifiedTokenCache | None = None,
) -> VerifiedToken:
    """Return the verified token or raise ``Denied`` with the reason.

    ``cache``, if given, lets a token string that already passed signature verification
    with the same key skip it, and the revocation check too while the revocation state
    has not changed since the token last passed it (its ``generation``: pruning only
    forgets); every other check still runs.
    """
    generation = revocation_state.generation
    try:
        verified, fresh_key = verify_signed_cached(token, keys, cache)
        check_claims(verified, policy, now)
        if cache is None or fresh_key is not None \
                or cache.revocation_passed(token) != generation:
            check_revocation(verified, revocation_state)
    except TokenRejected as exc:
        raise Denied.of(exc) from None
    check_freshness(revocation_state, policy, now)
    check_scopes(verified, policy)
    check_user_authentication(verified, policy, now)
    if cache is not None:
        if fresh_key is not None:
            cache.put(token, (verified, fresh_key))
        cache.pass_revocation(token, generation)
    return verified


def check_freshness(state: RevocationState, policy: VerificationPolicy, now: float) -> None:
    """DESIGN §3 staleness bound: fail closed when the state is older than allowed."""
    if policy.max_staleness is not None and state.is_stale(now, policy.max_staleness):
        raise Denied(Reason.STALE_STATE, f"bus lag {state.lag(now):.1f}s")
