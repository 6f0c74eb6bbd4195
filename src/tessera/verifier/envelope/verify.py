"""Envelope verification: a pure function of (envelope, body, publisher keys, policy,
revocation state, history, now). Steps, in order (the first that fails decides)::

    check_header (size, header, alg in ENVELOPE_ALGS, typ tessera-envelope+jwt, key by kid
      with that key's own alg) → verify_signature → parse_envelope → check_publisher
      → check_envelope_audience → check_envelope_lifetime → check_body
      → judge_revocation → check_envelope_freshness

The steps up to the signature are the access-token validator's
(``protocol/rfc9068/validator.py``) with the envelope's allowlist and ``typ``: one
implementation of the RFC 8725 header rules.

``judge_revocation`` applies the consumer's ``RevocationPolicy``; a revocation wins over
a stale state (as for access tokens), and a state too stale to trust fails closed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from tessera.core.secrets import constant_time_equal
from tessera.protocol.rfc9068.token import TokenRejected
from tessera.protocol.rfc9068.validator import check_header, verify_signature
from tessera.verifier._keyset import KeySet, VerificationKey
from tessera.verifier._token import VerifiedToken
from tessera.verifier.envelope.claims import (
    BODY_MISMATCH,
    ENVELOPE_ALGS,
    ENVELOPE_TYP,
    REVOCATION_UNKNOWN,
    DecisionBasis,
    EnvelopeClaims,
    EnvelopeDenied,
    EnvelopePolicy,
    RevocationPolicy,
    VerifiedEnvelope,
    body_hash,
    parse_envelope,
)
from tessera.verifier.errors import Denied, Reason
from tessera.verifier.revocation.history import RevocationHistory
from tessera.verifier.revocation.state import RevocationState

__all__ = [
    "PublisherKeys",
    "check_body",
    "check_envelope_audience",
    "check_envelope_freshness",
    "check_envelope_lifetime",
    "check_publisher",
    "judge_revocation",
    "verify_envelope",
]

_TYPS = frozenset({ENVELOPE_TYP, f"application/{ENVELOPE_TYP}"})


class PublisherKeys:
    """The publishing services a consumer trusts and their keys: each key speaks for one
    service only (a key of ``checkout`` cannot sign as ``billing``). Immutable."""

    __slots__ = ("_keys", "_publisher_of", "_sets")

    def __init__(self, publishers: Mapping[str, KeySet | Mapping[str, Any]]) -> None:
        """``publishers`` maps a service name (the envelopes' ``iss``) to its ``KeySet``
        or JWKS document. Keys not bound to EdDSA or ES256 are left out; a ``kid``
        published by two services is refused (``ValueError``)."""
        sets: dict[str, KeySet] = {}
        keys_by_kid: dict[str, VerificationKey] = {}
        publisher_of: dict[str, str] = {}
        for service, keys in publishers.items():
            if not service:
                raise ValueError("a publisher needs a name")
            keyset = keys if isinstance(keys, KeySet) else KeySet.from_jwks(keys)
            sets[service] = keyset
            for key in keyset:
                if key.alg not in ENVELOPE_ALGS:
                    continue
                other = publisher_of.get(key.kid)
                if other is not None:
                    raise ValueError(f"kid {key.kid!r} is published by both {other!r} "
                                     f"and {service!r}")
                keys_by_kid[key.kid] = key
                publisher_of[key.kid] = service
        self._sets = sets
        self._keys = keys_by_kid
        self._publisher_of = publisher_of

    def get(self, kid: str) -> tuple[str, VerificationKey] | None:
        """The publishing service and the key ``kid`` names, if one is trusted."""
        key = self._keys.get(kid)
        return None if key is None else (self._publisher_of[kid], key)

    @property
    def keys(self) -> Mapping[str, VerificationKey]:
        """Every trusted key by ``kid`` (the validator's ``KeyLookup``)."""
        return self._keys

    def with_publisher(self, service: str, keys: KeySet | Mapping[str, Any]) -> PublisherKeys:
        """A copy where ``service`` trusts ``keys`` (its rotated JWKS) instead."""
        return PublisherKeys({**self._sets, service: keys})

    def publisher_of(self, kid: str) -> str:
        """The service whose key ``kid`` is (``KeyError`` for an unknown ``kid``)."""
        return self._publisher_of[kid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._sets)

    def __repr__(self) -> str:
        return f"PublisherKeys({sorted(self._sets)!r}, kids={sorted(self._keys)!r})"


def verify_envelope(
    envelope: str,
    body: bytes,
    *,
    publishers: PublisherKeys,
    policy: EnvelopePolicy,
    revocation_state: RevocationState,
    history: RevocationHistory | None = None,
    now: float,
) -> VerifiedEnvelope:
    """The accepted envelope, or ``EnvelopeDenied`` with the reason."""
    try:
        key = check_header(envelope, publishers.keys, algorithms=ENVELOPE_ALGS, typs=_TYPS)
        payload = verify_signature(envelope, key)
    except TokenRejected as exc:
        raise EnvelopeDenied(exc.reason, exc.detail) from None
    publisher = publishers.publisher_of(key.kid)
    try:
        decoded = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise EnvelopeDenied(Reason.MALFORMED, "payload is not JSON") from None
    claims = parse_envelope(decoded, kid=key.kid, alg=key.alg)
    check_publisher(claims, publisher)
    check_envelope_audience(claims, policy)
    check_envelope_lifetime(claims, policy, now)
    check_body(claims, body)
    basis, revoked = judge_revocation(claims, policy=policy, state=revocation_state,
                                      history=history, now=now)
    check_envelope_freshness(claims, basis, revocation_state, policy, now)
    return VerifiedEnvelope.accept(claims, policy=policy.revocation, basis=basis,
                                   revoked=revoked)


def check_publisher(claims: EnvelopeClaims, publisher: str) -> None:
    """``iss`` is the service whose key signed (exact match)."""
    if claims.iss != publisher:
        raise EnvelopeDenied(Reason.WRONG_ISSUER,
                             f"iss {claims.iss!r} signed with a key of {publisher!r}",
                             envelope=claims)


def check_envelope_audience(claims: EnvelopeClaims, policy: EnvelopePolicy) -> None:
    """``aud`` is exactly this consumer."""
    if claims.aud != policy.audience:
        raise EnvelopeDenied(Reason.WRONG_AUDIENCE, f"aud {claims.aud!r}", envelope=claims)


def check_envelope_lifetime(claims: EnvelopeClaims, policy: EnvelopePolicy,
                            now: float) -> None:
    """``now < exp``, ``iat`` not in the future (both with leeway), and a bounded
    lifetime ``0 < exp - iat <= max_lifetime``."""
    if not 0.0 < claims.exp - claims.iat <= policy.max_lifetime:
        raise EnvelopeDenied(Reason.MALFORMED,
                             f"lifetime {claims.exp - claims.iat:.0f}s is not allowed",
                             envelope=claims)
    if now >= claims.exp + policy.leeway:
        raise EnvelopeDenied(Reason.EXPIRED, f"exp {claims.exp}", envelope=claims)
    if now + policy.leeway < claims.iat:
        raise EnvelopeDenied(Reason.NOT_YET_VALID, f"iat {claims.iat}", envelope=claims)


def check_body(claims: EnvelopeClaims, body: bytes) -> None:
    """``msg`` is the hash of this very body: an envelope cannot be moved to another."""
    if not constant_time_equal(claims.msg, body_hash(body)):  # bytes: msg may be non-ASCII
        raise EnvelopeDenied(Reason.BAD_SIGNATURE, "msg does not match the body",
                             label=BODY_MISMATCH, envelope=claims)


def judge_revocation(claims: EnvelopeClaims, *, policy: EnvelopePolicy,
                     state: RevocationState, history: RevocationHistory | None,
                     now: float) -> tuple[DecisionBasis, str | None]:
    """Decide revocation under the consumer's policy; returns ``(basis, revoked)``.

    ``reject_revoked``: deny if anything known revokes the envelope's credential now.
    ``authorized_at_emission``: if something does, accept only if it had not happened
    by the envelope's ``iat`` (the history replays events with ``at <= iat``).

    Either way the consumer must be able to vouch: its ``RevocationState`` remembers a
    credential's revocations until the access token's ``exp`` + leeway, a
    ``RevocationHistory`` ``retain`` seconds longer; past both → ``revocation_unknown``.
    """
    view = claims.revocation_view()
    current = _denial(state, view)
    remembered = history.revoked(view) if history is not None else None
    if current is None:
        current = remembered
    history_covers = history is not None and history.covers(view, now=now,
                                                            leeway=policy.leeway)
    covered = now < view.exp + policy.leeway or history_covers
    if policy.revocation is RevocationPolicy.REJECT_REVOKED:
        basis = DecisionBasis.PROCESSING_TIME
        if current is not None:
            raise _revoked(current, basis, claims)
        if not covered:
            raise _unknown("the revocation state no longer covers this credential",
                           basis, claims)
        return basis, None
    if current is None and covered:
        return DecisionBasis.PROCESSING_TIME, None
    basis = DecisionBasis.EMISSION_TIME
    if history is None or not history_covers:
        raise _unknown("no revocation history reaches back to this credential", basis,
                       claims)
    if remembered is None:
        raise _unknown("the revocation state knows a revocation the history does not",
                       basis, claims)
    assert current is not None
    at_emission = history.revoked(view, as_of=claims.iat)
    if at_emission is not None:
        raise _revoked(at_emission, basis, claims)
    return basis, _label(current)


def check_envelope_freshness(claims: EnvelopeClaims, basis: DecisionBasis,
                             state: RevocationState, policy: EnvelopePolicy,
                             now: float) -> None:
    """DESIGN §3 staleness bound: accept nothing on a state older than allowed."""
    if policy.max_staleness is not None and state.is_stale(now, policy.max_staleness):
        raise EnvelopeDenied(Reason.STALE_STATE, f"bus lag {state.lag(now):.1f}s",
                             basis=basis, envelope=claims)


def _denial(state: RevocationState, view: VerifiedToken) -> Denied | None:
    try:
        state.check(view)
    except Denied as denied:
        return denied
    return None


def _label(denied: Denied) -> str:
    label = getattr(denied, "label", None)
    return label if isinstance(label, str) else denied.reason.value


def _revoked(denied: Denied, basis: DecisionBasis, claims: EnvelopeClaims) -> EnvelopeDenied:
    return EnvelopeDenied(denied.reason, denied.detail, basis=basis, envelope=claims)


def _unknown(detail: str, basis: DecisionBasis, claims: EnvelopeClaims) -> EnvelopeDenied:
    return EnvelopeDenied(Reason.STALE_STATE, detail, label=REVOCATION_UNKNOWN, basis=basis,
                          envelope=claims)
