"""The one RFC 9068 §4 access-token validator, for the identity service (introspection,
userinfo, token exchange, admin API) and the verifier SDK alike.

Steps, in order (the first that fails decides the ``Reason``)::

    verify_signed:  check_header: check_size → read_header (JSON object, no ``crit``)
                      → check_algorithm (RFC 8725 §3.1 allowlist) → check_typ (``at+jwt``,
                      RFC 8725 §3.11) → select_key (``kid``, and only with that key's own
                      ``alg``)
                    → signature (``tessera.jose``) → parse_claims (required claims, types)
    check_claims:   ``iss`` exact → ``aud`` contains ours (when one is expected)
                    → ``exp``/``nbf``/``iat`` against ``now`` with leeway
    check_binding:  ``cnf.jkt`` against the DPoP proof's key (RFC 9449 §7),
                    ``cnf.x5t#S256`` against the client certificate (RFC 8705 §3)
    check_revocation(token, source): jti, session, refresh family, session version,
                    user / tenant / client revoked-before — asked of a ``RevocationSource``

Where revocation state comes from is the only thing that differs between the two sides:
the SDK's ``RevocationState`` (fed by the event stream) and, in the identity service, the
same state kept in memory (``identity.revocation_mirror``) or the store's rows
(``protocol.rfc9068.revocation``). Both answer the questions of ``RevocationSource``;
the rule that turns answers into a refusal is ``check_revocation``, here, once.

The header steps take the allowlist and the accepted ``typ`` values as parameters, so
other JWTs run the same code with their own lists: identity envelopes
(``verifier/envelope/verify.py``: ``check_header``) and DPoP proofs
(``protocol/rfc9449/proof.py``: ``check_typ``, ``check_algorithm``).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, NamedTuple, Protocol

import orjson

from tessera import jose
from tessera.protocol.rfc9068.token import Reason, TokenRejected, VerifiedToken, parse_claims

__all__ = ["ACCEPTED_TYPS", "ALLOWED_ALGS", "MAX_TOKEN_LENGTH", "NOTHING_KNOWN", "NO_GRAINS",
           "Expectations", "Grain", "GrainFacts", "KeyLookup", "RevocationFacts",
           "RevocationSource", "SessionFacts", "certificate_binding",
           "check_algorithm", "check_binding", "check_certificate_binding", "check_claims",
           "check_dpop_binding", "check_header", "check_possession", "check_revocation",
           "check_size", "check_typ", "select_key", "validate", "verify_signature",
           "verify_signed"]

MAX_TOKEN_LENGTH: Final = 8192
"""Longer strings are rejected before any parsing (bounds the work an attacker can cause)."""
ACCEPTED_TYPS: Final = frozenset({"at+jwt", "application/at+jwt"})
"""RFC 9068 §2.1 header ``typ`` values (compared case-insensitively, RFC 7515 §4.1.9)."""
ALLOWED_ALGS: Final = jose.ALGORITHMS
"""The only algorithms a Tessera access token may use."""


class Expectations(Protocol):
    """What the validating party expects (the SDK's ``VerificationPolicy`` is one)."""

    @property
    def issuer(self) -> str: ...
    @property
    def audience(self) -> str | None:
        """This party's audience; ``None``: any (introspection asks *about* a token)."""
    @property
    def leeway(self) -> float: ...


class KeyLookup(Protocol):
    """Verification keys by ``kid`` (the SDK's ``KeySet``, the server's key ring)."""

    def get(self, kid: str) -> jose.VerificationKey | None: ...


class Grain(StrEnum):
    """Revocations that end every token of a principal issued at or before a moment."""

    USER = "user"
    TENANT = "tenant"
    CLIENT = "client"


class SessionFacts(NamedTuple):
    """What a source knows about a session, for tokens issued to one client in it."""

    revoked: bool = False
    family_revoked_before: float | None = None
    """When a refresh family of the session issued to the client was revoked, if one
    was: access tokens carry no family id, so a revoked family ends what its session
    issued to its client up to then (RFC 7009 §2.1)."""
    version: int | None = None
    """The session's current version, if known."""


class GrainFacts(NamedTuple):
    """Revoked-before moments of the token's user, tenant and client, where known."""

    user: float | None = None
    tenant: float | None = None
    client: float | None = None


NOTHING_KNOWN: Final = SessionFacts()
NO_GRAINS: Final = GrainFacts()


class RevocationSource(Protocol):
    """Live state about tokens: the questions ``check_revocation`` asks (three calls on
    the hot path; ``NOTHING_KNOWN``/``NO_GRAINS`` answer the common case)."""

    def token_revoked(self, jti: str) -> bool: ...
    def session(self, sid: str, client_id: str) -> SessionFacts: ...
    def grains(self, user_id: str, tenant_id: str, client_id: str) -> GrainFacts: ...


@dataclass(frozen=True, slots=True)
class RevocationFacts:
    """A ``RevocationSource`` holding the answers for one token, looked up beforehand
    (the store: one read-only unit of work, then the same rule as everywhere)."""

    jti_revoked: bool = False
    session_facts: SessionFacts = NOTHING_KNOWN
    grain_facts: GrainFacts = NO_GRAINS

    def token_revoked(self, jti: str) -> bool:
        return self.jti_revoked

    def session(self, sid: str, client_id: str) -> SessionFacts:
        return self.session_facts

    def grains(self, user_id: str, tenant_id: str, client_id: str) -> GrainFacts:
        return self.grain_facts


def validate(token: str, *, keys: KeyLookup, expect: Expectations, revocation: RevocationSource,
             now: float, jkt: str | None = None, x5t: str | None = None,
             check_presentation: bool = True) -> VerifiedToken:
    """Every check, in order; raises ``TokenRejected``. ``jkt``/``x5t``: the DPoP proof
    key and client certificate thumbprints the token came with (``check_presentation``
    off: the caller asks *about* the token, as introspection does)."""
    verified = verify_signed(token, keys)[0]
    check_claims(verified, expect, now)
    if check_presentation:
        check_binding(verified, jkt=jkt, x5t=x5t)
    check_revocation(verified, revocation)
    return verified


def verify_signed(token: str, keys: KeyLookup) -> tuple[VerifiedToken, jose.VerificationKey]:
    """Header, algorithm, ``typ``, key, signature and claim shapes (everything a
    verified-token cache may skip on a repeat presentation)."""
    key = check_header(token, keys)
    payload = verify_signature(token, key)
    try:
        claims = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise TokenRejected(Reason.MALFORMED, "payload is not JSON") from None
    return parse_claims(claims, kid=key.kid, alg=key.alg), key


def check_header(token: str, keys: KeyLookup, *, algorithms: AbstractSet[str] = ALLOWED_ALGS,
                 typs: AbstractSet[str] = ACCEPTED_TYPS) -> jose.VerificationKey:
    """Size, header, ``alg`` among ``algorithms``, ``typ`` among ``typs``, and the key
    that must have signed (the steps before the signature, for any JWT Tessera verifies:
    access tokens with the defaults, identity envelopes with their own lists)."""
    check_size(token)
    try:
        header = jose.read_header(token)
    except jose.JoseError as exc:
        raise TokenRejected(Reason.MALFORMED, exc.detail) from None
    check_algorithm(header.alg, algorithms)
    check_typ(header.typ, typs)
    return select_key(header, keys)


def check_size(token: object) -> None:
    if not isinstance(token, str) or not token:
        raise TokenRejected(Reason.MALFORMED, "token is not a string")
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenRejected(Reason.MALFORMED, "token too long")


def check_algorithm(alg: object, allowed: AbstractSet[str] = ALLOWED_ALGS) -> str:
    """RFC 8725 §3.1: only the algorithms in ``allowed`` (by default those Tessera signs
    access tokens with); never ``none`` or HS*. A non-string ``alg`` (a JSON list or
    object) is refused, not looked up: it would not even hash. Returns ``alg``."""
    if not isinstance(alg, str) or alg not in allowed:
        raise TokenRejected(Reason.BAD_ALGORITHM, f"alg {str(alg)[:20]!r}")
    return alg


def check_typ(typ: object, accepted: AbstractSet[str] = ACCEPTED_TYPS) -> None:
    """RFC 9068 §4 step 1: ``typ`` is ``at+jwt`` (RFC 8725 §3.11 explicit typing), or
    one of ``accepted`` (lower case) for another kind of JWT; compared
    case-insensitively (RFC 7515 §4.1.9)."""
    if not isinstance(typ, str) or typ.lower() not in accepted:
        raise TokenRejected(Reason.WRONG_TYP, f"typ {str(typ)[:40]!r}")


def select_key(header: jose.Header, keys: KeyLookup) -> jose.VerificationKey:
    """The key named by ``kid``, and only if the header's ``alg`` is that key's ``alg``."""
    kid = header.kid
    if not isinstance(kid, str) or not kid:
        raise TokenRejected(Reason.MALFORMED, "kid missing")
    key = keys.get(kid)
    if key is None:
        raise TokenRejected(Reason.UNKNOWN_KID, f"kid {kid[:40]!r}")
    if header.alg != key.alg:
        raise TokenRejected(Reason.BAD_ALGORITHM, f"alg {header.alg!r} for a {key.alg} key")
    return key


def verify_signature(token: str, key: jose.VerificationKey) -> bytes:
    """RFC 9068 §4 step 2: the payload, if the signature is ``key``'s (its algorithm)."""
    try:
        return jose.verify(token, key)
    except jose.JoseError as exc:
        reason = Reason.BAD_SIGNATURE if exc.reason == "bad_signature" else Reason.MALFORMED
        raise TokenRejected(reason, exc.detail) from None


def check_claims(token: VerifiedToken, expect: Expectations, now: float) -> None:
    """RFC 9068 §4 steps 3–4 and RFC 7519 §4.1.4–§4.1.6: ``iss`` exactly the issuer,
    our audience among ``aud`` (when one is expected), ``now < exp``, ``now >= nbf``,
    ``iat`` not in the future, each with ``leeway`` seconds of slack."""
    if token.iss != expect.issuer:
        raise TokenRejected(Reason.WRONG_ISSUER, f"iss {token.iss[:80]!r}")
    audience = expect.audience
    if audience is not None and audience not in token.aud:
        raise TokenRejected(Reason.WRONG_AUDIENCE, f"aud {list(token.aud)[:4]!r}")
    leeway = expect.leeway
    if now >= token.exp + leeway:
        raise TokenRejected(Reason.EXPIRED, f"exp {token.exp}")
    if token.nbf is not None and now + leeway < token.nbf:
        raise TokenRejected(Reason.NOT_YET_VALID, f"nbf {token.nbf}")
    if now + leeway < token.iat:
        raise TokenRejected(Reason.NOT_YET_VALID, f"iat {token.iat}")


def check_possession(bound: str | None, jkt: str | None) -> None:
    """RFC 9449 §5, §7: a credential bound to a DPoP key (an access token's ``cnf.jkt``,
    a refresh family's key) is used only with a proof of that key. Constant-time."""
    if bound is None:
        return
    if jkt is None:
        raise TokenRejected(Reason.DPOP_BINDING, "a DPoP-bound credential without a proof")
    if not hmac.compare_digest(bound.encode(), jkt.encode()):
        raise TokenRejected(Reason.DPOP_BINDING, "the proof's key is not the credential's")


def check_dpop_binding(bound: str | None, jkt: str | None) -> None:
    """RFC 9449 §7.1 for an access token *presented* to a resource: ``check_possession``,
    and an unbound token only without a proof (a proof does not upgrade a Bearer token).
    Where a proof may bind what is issued next (refresh, token exchange), only
    ``check_possession`` applies."""
    if bound is None and jkt is not None:
        raise TokenRejected(Reason.DPOP_BINDING, "a DPoP proof for an unbound token")
    check_possession(bound, jkt)


def certificate_binding(token: VerifiedToken) -> tuple[bool, str | None]:
    """Whether the token is certificate-bound, and to which ``x5t#S256`` (None: bound to
    something unreadable, which no certificate fits)."""
    cnf = token.claims.get("cnf")
    if not isinstance(cnf, Mapping) or "x5t#S256" not in cnf:
        return False, None
    value = cnf["x5t#S256"]
    return True, value if isinstance(value, str) else None


def check_certificate_binding(token: VerifiedToken, x5t: str | None) -> None:
    """RFC 8705 §3: a certificate-bound token only over a connection presenting that
    certificate (``x5t``: its SHA-256 thumbprint); an unbound token with any or none."""
    bound, thumbprint = certificate_binding(token)
    if not bound:
        return
    if thumbprint is None or x5t is None or not hmac.compare_digest(
            thumbprint.encode(), x5t.encode()):
        raise TokenRejected(Reason.CERTIFICATE_BINDING,
                            "no client certificate" if x5t is None else "another certificate")


def check_binding(token: VerifiedToken, *, jkt: str | None, x5t: str | None) -> None:
    """How the token was presented fits its ``cnf`` (DPoP key, client certificate)."""
    check_dpop_binding(token.cnf_jkt, jkt)
    check_certificate_binding(token, x5t)


def check_revocation(token: VerifiedToken, source: RevocationSource) -> None:
    """The revocation rule, once for every side: a revoked ``jti``; for a session
    token, an ended session, a revoked refresh family of its session and client, an
    older session version; a user, tenant or client revoked at or after ``iat``."""
    if source.token_revoked(token.jti):
        raise TokenRejected(Reason.TOKEN_REVOKED)
    iat, sid = token.iat, token.sid
    if sid is not None:
        session = source.session(sid, token.client_id)
        if session is not NOTHING_KNOWN:
            if session.revoked:
                raise TokenRejected(Reason.SESSION_REVOKED)
            before = session.family_revoked_before
            if before is not None and iat <= before:
                raise TokenRejected(Reason.FAMILY_REVOKED)
            version = session.version
            if version is not None and token.sv is not None and token.sv < version:
                raise TokenRejected(Reason.STALE_SESSION_VERSION, f"sv {token.sv} < {version}")
    grains = source.grains(token.sub, token.tid, token.client_id)
    if grains is NO_GRAINS:
        return
    if grains.user is not None and iat <= grains.user:
        raise TokenRejected(Reason.USER_REVOKED)
    if grains.tenant is not None and iat <= grains.tenant:
        raise TokenRejected(Reason.TENANT_REVOKED)
    if grains.client is not None and iat <= grains.client:
        raise TokenRejected(Reason.CLIENT_REVOKED)
