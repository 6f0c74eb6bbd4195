"""The decision: ``verify_access_token`` — a pure function of (token, keys, policy,
revocation state, now), implementing RFC 9068 §4 plus Tessera's revocation checks.

Steps, in order (the first that fails decides the reason)::

    check_size → read_header → check_algorithm → check_typ → select_key
      → verify_signature → parse_claims          (skipped on a verified-token cache hit)
    → check_issuer → check_audience → check_lifetime → revocation_state.check
    → check_freshness → check_scopes → check_user_authentication

Scopes come late so that a revoked or expired token is 401, never 403; the RFC 9470
step-up check (``policy.min_acr``/``max_auth_age``) last, so a client is only asked to
step up for a token that would otherwise be accepted.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

import jwt
import orjson
from jwt.api_jws import PyJWS

from tessera.verifier._cache import VerifiedTokenCache
from tessera.verifier._claims import (
    check_audience,
    check_issuer,
    check_lifetime,
    check_scopes,
    check_user_authentication,
)
from tessera.verifier._keyset import ALLOWED_ALGS, KeySet, VerificationKey
from tessera.verifier._policy import VerificationPolicy
from tessera.verifier._token import VerifiedToken, parse_claims
from tessera.verifier.errors import Denied, Reason
from tessera.verifier.revocation.state import RevocationState

__all__ = ["ACCEPTED_TYPS", "MAX_TOKEN_LENGTH", "verify_access_token"]

MAX_TOKEN_LENGTH: Final = 8192
"""Longer strings are rejected before any parsing (bounds the work an attacker can cause)."""

ACCEPTED_TYPS: Final = frozenset({"at+jwt", "application/at+jwt"})
"""RFC 9068 §2.1 header ``typ`` values (compared case-insensitively, RFC 7515 §4.1.9)."""

_HEADER_CACHE_SIZE: Final = 256
_jws: Final = PyJWS()


class _Header(NamedTuple):
    alg: object
    kid: object
    typ: object


_headers: dict[str, _Header] = {}
"""Parsed headers by header segment: a handful of distinct values (one per key)."""


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
    with the same key skip it; every other check still runs.
    """
    verified, key = _cached(cache, token, keys)
    if verified is None:
        verified, key = _verify_signed(token, keys)
    check_issuer(verified, policy)
    check_audience(verified, policy)
    check_lifetime(verified, policy, now)
    revocation_state.check(verified)
    check_freshness(revocation_state, policy, now)
    check_scopes(verified, policy)
    check_user_authentication(verified, policy, now)
    if cache is not None and key is not None:
        cache.put(token, (verified, key))
    return verified


def check_freshness(state: RevocationState, policy: VerificationPolicy, now: float) -> None:
    """DESIGN §3 staleness bound: fail closed when the state is older than allowed."""
    if policy.max_staleness is not None and state.is_stale(now, policy.max_staleness):
        raise Denied(Reason.STALE_STATE, f"bus lag {state.lag(now):.1f}s")


def _cached(
    cache: VerifiedTokenCache | None, token: str, keys: KeySet
) -> tuple[VerifiedToken | None, VerificationKey | None]:
    """A cache hit, if the key that verified it is still the key for its kid.

    Returns ``(token, None)`` on a hit so the entry is not written back.
    """
    if cache is None:
        return None, None
    entry = cache.get(token)
    if entry is None:
        return None, None
    verified, key = entry
    if keys.get(verified.kid) is not key:
        cache.discard(token)
        return None, None
    return verified, None


def _verify_signed(token: str, keys: KeySet) -> tuple[VerifiedToken, VerificationKey]:
    check_size(token)
    header = read_header(token)
    check_algorithm(header)
    check_typ(header)
    key = select_key(header, keys)
    payload = verify_signature(token, key)
    return parse_claims(_decode_json(payload), kid=key.kid, alg=key.alg), key


def check_size(token: object) -> None:
    if not isinstance(token, str) or not token:
        raise Denied(Reason.MALFORMED, "token is not a string")
    if len(token) > MAX_TOKEN_LENGTH:
        raise Denied(Reason.MALFORMED, "token too long")


def read_header(token: str) -> _Header:
    """The JOSE header, parsed by PyJWT; memoised per header segment."""
    segment = token.partition(".")[0]
    header = _headers.get(segment)
    if header is None:
        try:
            raw = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Denied(Reason.MALFORMED, str(exc)) from None
        header = _Header(raw.get("alg"), raw.get("kid"), raw.get("typ"))
        if len(_headers) >= _HEADER_CACHE_SIZE:
            _headers.clear()
        _headers[segment] = header
    return header


def check_algorithm(header: _Header) -> None:
    """RFC 8725 §3.1: only the algorithms Tessera signs with; never ``none`` or HS*. A
    non-string ``alg`` (a JSON list or object) is refused, not looked up: it would not
    even hash."""
    if not isinstance(header.alg, str) or header.alg not in ALLOWED_ALGS:
        raise Denied(Reason.BAD_ALGORITHM, f"alg {header.alg!r}")


def check_typ(header: _Header) -> None:
    """RFC 9068 §4 step 1: ``typ`` is ``at+jwt`` (RFC 8725 §3.11 explicit typing)."""
    typ = header.typ
    if not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPS:
        raise Denied(Reason.WRONG_TYP, f"typ {typ!r}")


def select_key(header: _Header, keys: KeySet) -> VerificationKey:
    """The key named by ``kid``, and only if the header's ``alg`` is that key's ``alg``."""
    kid = header.kid
    if not isinstance(kid, str) or not kid:
        raise Denied(Reason.MALFORMED, "kid missing")
    key = keys.get(kid)
    if key is None:
        raise Denied(Reason.UNKNOWN_KID, f"kid {kid!r}")
    if header.alg != key.alg:
        raise Denied(Reason.BAD_ALGORITHM, f"alg {header.alg!r} for a {key.alg} key")
    return key


def verify_signature(token: str, key: VerificationKey) -> bytes:
    """RFC 9068 §4 step 2 via PyJWT, with the key object and ``algorithms=[key.alg]``."""
    try:
        decoded = _jws.decode_complete(token, key.public_key, algorithms=[key.alg])
    except jwt.InvalidSignatureError:
        raise Denied(Reason.BAD_SIGNATURE) from None
    except (jwt.InvalidAlgorithmError, jwt.InvalidKeyError) as exc:
        raise Denied(Reason.BAD_ALGORITHM, str(exc)) from None
    except jwt.PyJWTError as exc:
        raise Denied(Reason.MALFORMED, str(exc)) from None
    payload: bytes = decoded["payload"]
    return payload


def _decode_json(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise Denied(Reason.MALFORMED, "payload is not JSON") from None
