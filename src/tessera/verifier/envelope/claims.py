"""Identity envelopes for async work (DESIGN §2): who asked for a queued message, in which
session and how they logged in — signed by the publishing service, checked by the consumer.

An envelope is a compact JWS (RFC 7515) with header ``typ: tessera-envelope+jwt``
(RFC 8725 §3.11 explicit typing: it never passes for an access token, nor one for it),
signed with the publishing service's *own* key (EdDSA or ES256, through ``KeyRing``).
It carries identifiers and times taken from the verified access token, never the token::

    iss        publishing service          sub        actor (the access token's sub)
    aud        consuming queue / service   tid        tenant
    jti        this envelope's id          client_id  client the actor used
    iat, exp   emission and expiry         sid, sv    session and session version
    req        request (correlation) id    acr, amr, auth_time   how the actor logged in
    msg        SHA-256 (base64url) of the exact message body bytes
    tok        {"jti", "iat", "exp"} of the access token that authorised the action
    act        RFC 8693 §4.1 actor chain, when the access token had one

``msg`` binds the envelope to one message body: moved onto another body it fails.
``tok`` lets the consumer ask its revocation state the question it asks of access
tokens ("would the credential behind this action be accepted?"), grain by grain.

Errors: every refusal is an ``EnvelopeDenied`` (a ``Denied``), whose ``label`` is the
decision reason — a ``Reason`` value, or one of::

    body_mismatch        msg is not the hash of this body
    replayed             the envelope's jti came back with another body, or any
                         duplicate when the consumer rejects duplicates
    revocation_unknown   the consumer's revocation knowledge no longer reaches back to
                         this envelope's credential; it cannot vouch either way
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from tessera.core.clock import Clock
from tessera.core.secrets import new_secret
from tessera.keys import KeyRing, KeyState, new_signing_key
from tessera.verifier._policy import MAX_ENVELOPE_TTL, MAX_LEEWAY
from tessera.verifier._token import VerifiedToken
from tessera.verifier.errors import Denied, Reason

__all__ = [
    "BODY_MISMATCH",
    "DEFAULT_ENVELOPE_TTL",
    "ENVELOPE_ALGS",
    "ENVELOPE_TYP",
    "MAX_ENVELOPE_TTL",
    "REPLAYED",
    "REVOCATION_UNKNOWN",
    "DecisionBasis",
    "EnvelopeClaims",
    "EnvelopeDenied",
    "EnvelopePolicy",
    "EnvelopeSigner",
    "RevocationPolicy",
    "VerifiedEnvelope",
    "body_hash",
    "parse_envelope",
]

ENVELOPE_TYP: Final = "tessera-envelope+jwt"
"""JOSE header ``typ`` of an envelope (media type ``application/tessera-envelope+jwt``)."""

ENVELOPE_ALGS: Final = frozenset({"EdDSA", "ES256"})
"""Algorithms an envelope may be signed with (small, fast signatures; no RSA)."""

DEFAULT_ENVELOPE_TTL: Final = 900.0

BODY_MISMATCH: Final = "body_mismatch"
REPLAYED: Final = "replayed"
REVOCATION_UNKNOWN: Final = "revocation_unknown"

_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:/+=\-]{1,128}")
"""The correlation-id shape the decision log accepts (``_decisions.correlation_id_from``)."""
_BODY_HASH: Final = re.compile(r"[A-Za-z0-9_\-]{43}")
_NUMBER: Final = (int, float)


class RevocationPolicy(StrEnum):
    """What a consumer does with an envelope whose actor was revoked after emission."""

    REJECT_REVOKED = "reject_revoked"
    """Process only if the actor's credential would still be accepted now (processing
    time): a revoked session, user, tenant, client, family or token, or a stale ``sv``,
    denies the message."""

    AUTHORIZED_AT_EMISSION = "authorized_at_emission"
    """Process if the actor's credential was accepted when the envelope was emitted: a
    revocation that happened after ``iat`` does not undo work the actor already asked
    for; one that happened at or before ``iat`` denies it. Needs a ``RevocationHistory``."""


class DecisionBasis(StrEnum):
    """Which moment a revocation decision was taken for (audit field ``basis``)."""

    PROCESSING_TIME = "processing_time"
    EMISSION_TIME = "emission_time"


class EnvelopeDenied(Denied):
    """The envelope is refused. ``label`` is the decision reason (``Reason`` value or one
    of the envelope labels); ``basis`` is set when revocation decided; ``envelope`` holds
    the claims when the signature had been verified (for the audit event)."""

    def __init__(self, reason: Reason, detail: str = "", *, label: str | None = None,
                 basis: DecisionBasis | None = None,
                 envelope: EnvelopeClaims | None = None) -> None:
        super().__init__(reason, detail)
        self.label = label if label is not None else reason.value
        self.basis = basis
        self.envelope = envelope

    @property
    def retryable(self) -> bool:
        """True only when the consumer's own revocation state lags: retry after it has
        caught up (leave the message un-acknowledged). Anything else will not change."""
        return self.label == Reason.STALE_STATE.value

    @property
    def description(self) -> str:
        return f"The identity envelope was rejected ({self.label})."


@dataclass(frozen=True, slots=True)
class EnvelopePolicy:
    """What one consumer accepts."""

    audience: str
    """This consumer's name (queue, stream or service); the envelope's ``aud`` must be it."""

    revocation: RevocationPolicy = RevocationPolicy.REJECT_REVOKED
    """Processing-time or emission-time revocation semantics (``RevocationPolicy``)."""

    leeway: float = 30.0
    """Clock-skew allowance for ``exp`` and ``iat``, 0..60 seconds (DESIGN §9)."""

    max_lifetime: float = MAX_ENVELOPE_TTL
    """Refuse envelopes whose ``exp - iat`` is longer (at most ``MAX_ENVELOPE_TTL``)."""

    max_staleness: float | None = None
    """If set, refuse (``stale_state``, retryable) when the revocation state has not heard
    from the bus for longer than this many seconds."""

    reject_duplicates: bool = False
    """Refuse a second delivery of an envelope already accepted (``replayed``). Off by
    default: at-least-once queues redeliver un-acknowledged messages, and the result's
    ``duplicate`` flag lets an idempotent handler skip them."""

    def __post_init__(self) -> None:
        if not self.audience:
            raise ValueError("audience is required")
        object.__setattr__(self, "revocation", RevocationPolicy(self.revocation))
        if not 0.0 <= self.leeway <= MAX_LEEWAY:
            raise ValueError(f"leeway must be between 0 and {MAX_LEEWAY:g} seconds")
        if not 0.0 < self.max_lifetime <= MAX_ENVELOPE_TTL:
            raise ValueError(f"max_lifetime must be in (0, {MAX_ENVELOPE_TTL:g}] seconds")
        if self.max_staleness is not None and self.max_staleness <= 0:
            raise ValueError("max_staleness must be positive")


@dataclass(frozen=True, slots=True)
class EnvelopeClaims:
    """A signature-verified envelope, typed (claim names as in the module docstring)."""

    kid: str
    alg: str
    iss: str
    sub: str
    aud: str
    jti: str
    iat: float
    exp: float
    req: str
    msg: str
    tid: str
    client_id: str
    sid: str | None
    sv: int | None
    acr: str | None
    amr: tuple[str, ...]
    auth_time: float | None
    act: Mapping[str, Any] | None
    token_jti: str
    token_iat: float
    token_exp: float
    claims: Mapping[str, Any]
    """Every claim, read-only."""

    @property
    def publisher(self) -> str:
        return self.iss

    @property
    def actor(self) -> str:
        return self.sub

    @property
    def tenant(self) -> str:
        return self.tid

    @property
    def request_id(self) -> str:
        return self.req

    def revocation_view(self) -> VerifiedToken:
        """The access token behind the action as ``RevocationState.check`` sees it
        (identifiers and times only), so envelopes and tokens share one set of rules."""
        return VerifiedToken(
            self.kid, self.alg, self.iss, self.sub, (self.aud,), self.token_exp,
            self.token_iat, None, self.token_jti, self.client_id, frozenset(), self.tid,
            self.sid, self.sv, self.acr, self.amr, self.auth_time, None, self.act,
            MappingProxyType({}))


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedEnvelope(EnvelopeClaims):
    """An accepted envelope and why it was accepted."""

    policy: RevocationPolicy
    basis: DecisionBasis
    """``processing_time``: nothing revokes the actor now. ``emission_time``: the actor
    is revoked now, but was not when the envelope was emitted (``authorized_at_emission``)."""
    revoked: str | None = None
    """With ``emission_time``: what revokes the actor now (e.g. ``session_revoked``)."""
    duplicate: bool = False
    """This consumer already accepted this envelope (a redelivery)."""

    @classmethod
    def accept(cls, claims: EnvelopeClaims, *, policy: RevocationPolicy,
               basis: DecisionBasis, revoked: str | None = None) -> VerifiedEnvelope:
        values = {f.name: getattr(claims, f.name) for f in fields(EnvelopeClaims)}
        return cls(**values, policy=policy, basis=basis, revoked=revoked)


def body_hash(body: bytes) -> str:
    """The ``msg`` claim: SHA-256 of the exact body bytes, base64url without padding."""
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError("the message body must be bytes")
    digest = hashlib.sha256(body).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class EnvelopeSigner:
    """Signs envelopes for one publishing service with its own ``KeyRing`` (the active
    key signs; ``jwks()`` is what consumers trust for this service). Rotate by assigning
    a new ring to ``ring``."""

    def __init__(self, service: str, ring: KeyRing, *, clock: Clock,
                 ttl: float = DEFAULT_ENVELOPE_TTL, leeway: float = 30.0) -> None:
        if not service:
            raise ValueError("service is required (it becomes the envelope's iss)")
        _check_ttl(ttl)
        if not 0.0 <= leeway <= MAX_LEEWAY:
            raise ValueError(f"leeway must be between 0 and {MAX_LEEWAY:g} seconds")
        self.service = service
        self.ring = ring
        self._clock = clock
        self._ttl = ttl
        self._leeway = leeway
        self._check_ring()

    @classmethod
    def generate(cls, service: str, *, clock: Clock, alg: str = "EdDSA",
                 ttl: float = DEFAULT_ENVELOPE_TTL) -> EnvelopeSigner:
        """A signer with a freshly generated key (EdDSA by default, or ES256)."""
        if alg not in ENVELOPE_ALGS:
            raise ValueError(f"envelopes are signed with {sorted(ENVELOPE_ALGS)}, not {alg!r}")
        key = new_signing_key(alg, state=KeyState.ACTIVE, now=clock.now())
        return cls(service, KeyRing([key]), clock=clock, ttl=ttl)

    @property
    def kid(self) -> str:
        return self.ring.active.kid

    def jwks(self) -> dict[str, Any]:
        """The public keys consumers need to trust this service (RFC 7517 JWK Set)."""
        return self.ring.jwks()

    def claims(self, token: VerifiedToken, *, body: bytes, audience: str, request_id: str,
               ttl: float | None = None) -> dict[str, Any]:
        """The envelope claims for an action ``token``'s actor asked for.

        Raises ``ValueError`` for a bad argument and ``Denied(expired)`` when the access
        token has expired (nothing left to vouch for).
        """
        if not audience:
            raise ValueError("audience (the consumer) is required")
        if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id):
            raise ValueError("request_id must be 1-128 characters of [A-Za-z0-9._:/+=-]")
        lifetime = self._ttl if ttl is None else ttl
        _check_ttl(lifetime)
        now = self._clock.now()
        if now >= token.exp + self._leeway:
            raise Denied(Reason.EXPIRED, "the access token behind the envelope has expired")
        claims: dict[str, Any] = {
            "iss": self.service, "sub": token.sub, "aud": audience, "jti": new_secret(16),
            "iat": round(now, 3), "exp": round(now + lifetime, 3), "req": request_id,
            "msg": body_hash(body), "tid": token.tid, "client_id": token.client_id,
            "tok": {"jti": token.jti, "iat": token.iat, "exp": token.exp},
        }
        if token.sid is not None:
            claims["sid"], claims["sv"] = token.sid, token.sv
        if token.acr is not None:
            claims["acr"] = token.acr
        if token.amr:
            claims["amr"] = list(token.amr)
        if token.auth_time is not None:
            claims["auth_time"] = token.auth_time
        if token.act is not None:
            claims["act"] = _plain(token.act)
        return claims

    def sign(self, token: VerifiedToken, *, body: bytes, audience: str, request_id: str,
             ttl: float | None = None) -> str:
        """The compact JWS to send alongside ``body`` (e.g. a message header or field)."""
        self._check_ring()
        return self.ring.sign(self.claims(token, body=body, audience=audience,
                                          request_id=request_id, ttl=ttl), typ=ENVELOPE_TYP)

    def _check_ring(self) -> None:
        if self.ring.active.alg not in ENVELOPE_ALGS:
            raise ValueError(f"the active key must use one of {sorted(ENVELOPE_ALGS)}")


def _check_ttl(ttl: float) -> None:
    if not 0.0 < ttl <= MAX_ENVELOPE_TTL:
        raise ValueError(f"ttl must be in (0, {MAX_ENVELOPE_TTL:g}] seconds")


def _plain(value: Any) -> Any:
    """Read-only mappings (``VerifiedToken.act``) back to JSON-serialisable dicts."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def parse_envelope(claims: object, *, kid: str, alg: str) -> EnvelopeClaims:
    """Typed claims from a verified payload; ``EnvelopeDenied(malformed)`` on a bad shape.
    Presence and types only — what the values must be is checked by the caller."""
    if type(claims) is not dict:
        raise _malformed("payload is not a JSON object")
    for name in ("iss", "sub", "aud", "jti", "tid", "client_id"):
        _require(claims, name, _nonempty_str)
    for name in ("iat", "exp"):
        _require(claims, name, _number)
    _require(claims, "req", lambda v: type(v) is str and bool(_REQUEST_ID.fullmatch(v)))
    _require(claims, "msg", lambda v: type(v) is str and bool(_BODY_HASH.fullmatch(v)))
    tok = claims.get("tok")
    if not (type(tok) is dict and _nonempty_str(tok.get("jti"))
            and _number(tok.get("iat")) and _number(tok.get("exp"))):
        raise _malformed("tok must be an object with jti, iat and exp")
    sid, sv = claims.get("sid"), claims.get("sv")
    if not ((sid is None and sv is None) or (_nonempty_str(sid) and type(sv) is int)):
        raise _malformed("sid must be a string with an integer sv")
    acr, amr, auth_time, act = (claims.get("acr"), claims.get("amr"),
                                claims.get("auth_time"), claims.get("act"))
    if acr is not None and not _nonempty_str(acr):
        raise _malformed("acr is not a string")
    if amr is not None and not (type(amr) is list and all(type(m) is str for m in amr)):
        raise _malformed("amr is not a list of strings")
    if auth_time is not None and not _number(auth_time):
        raise _malformed("auth_time is not a number")
    if act is not None and type(act) is not dict:
        raise _malformed("act is not an object")
    return EnvelopeClaims(
        kid, alg, claims["iss"], claims["sub"], claims["aud"], claims["jti"],
        float(claims["iat"]), float(claims["exp"]), claims["req"], claims["msg"],
        claims["tid"], claims["client_id"], sid, sv, acr, tuple(amr or ()),
        None if auth_time is None else float(auth_time),
        None if act is None else MappingProxyType(act),
        tok["jti"], float(tok["iat"]), float(tok["exp"]), MappingProxyType(claims))


def _nonempty_str(value: object) -> bool:
    return type(value) is str and bool(value)


def _number(value: object) -> bool:
    return type(value) in _NUMBER and value == value  # excludes bool and NaN


def _require(claims: dict[str, Any], name: str, ok: Any) -> None:
    if not ok(claims.get(name)):
        raise _malformed(f"{name} missing or of the wrong type")


def _malformed(detail: str) -> EnvelopeDenied:
    return EnvelopeDenied(Reason.MALFORMED, detail)
