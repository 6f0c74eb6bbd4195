"""The DPoP proof JWT check of RFC 9449 §4.3 — pure: a function of (proof, method, URL,
now, allowed algorithms, window, access token). Nonce and replay, which need state, are
``nonce`` and ``replay``; ``ProofChecker`` runs the three in order.

Steps (the first that fails decides the ``InvalidProof`` reason)::

    check_size → read_header (typ, alg allowlist, jwk: public, fits alg; RFC 7638 jkt)
      → verify_signature (with that jwk) → parse_claims (jti, htm, htu, iat, ath, nonce)
      → check_method → check_url → check_iat → check_ath (resource servers)

JOSE work is ``tessera.jose``'s: the jwk is imported and thumbprinted (RFC 7638), and the
signature verified with the algorithm pinned to the header's one, which must fit the key.
Headers are memoised by their encoded segment: a client signs every proof with the same
key, so key import, thumbprint and key preparation run once per client key.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import orjson

from tessera import jose
from tessera.core.secrets import constant_time_equal
from tessera.protocol.rfc9068.token import TokenRejected
from tessera.protocol.rfc9068.validator import check_algorithm, check_typ
from tessera.protocol.rfc9449.errors import InvalidProof
from tessera.protocol.rfc9449.htu import MAX_HTU_LENGTH, normalize_htu

__all__ = ["DEFAULT_WINDOW", "DPOP_TYP", "MAX_PROOF_LENGTH", "SUPPORTED_ALGS", "DPoPProof",
           "access_token_hash", "check_proof", "jwk_thumbprint"]

DPOP_TYP: Final = "dpop+jwt"
SUPPORTED_ALGS: Final = ("ES256", "EdDSA", "RS256")
"""Asymmetric algorithms accepted in proofs (never ``none`` or HS*, RFC 9449 §4.3 check 5)."""
DEFAULT_WINDOW: Final = 60.0
"""Seconds a proof's ``iat`` may lie before or after now."""
MAX_PROOF_LENGTH: Final = 8192
"""Longer proofs are refused before any parsing (an RSA-4096 proof is ~1.6 kB)."""
_MAX_CLAIM_LENGTH: Final = 512
_TYPS: Final = frozenset({DPOP_TYP, "application/" + DPOP_TYP})
_ALGS: Final = frozenset(SUPPORTED_ALGS)
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_KTY: Final = jose.KTY
_MEMO_SIZE: Final = 1024


@dataclass(frozen=True, slots=True)
class DPoPProof:
    """A proof that passed every stateless check."""

    jkt: str
    """RFC 7638 SHA-256 thumbprint of the proof's public key (``cnf.jkt``, RFC 9449 §6)."""
    jti: str
    htm: str
    htu: str
    iat: float
    ath: str | None = None
    nonce: str | None = None


class _ProofKey(NamedTuple):
    alg: str
    key: jose.VerificationKey
    jkt: str


_keys: dict[str, _ProofKey] = {}
"""Checked proof headers by encoded header segment (bounded)."""


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK SHA-256 thumbprint, base64url. ``ValueError`` if the JWK cannot be
    imported."""
    return jose.jwk_thumbprint(jwk)


def access_token_hash(access_token: str) -> str:
    """RFC 9449 §4.2 ``ath``: base64url (no padding) of SHA-256 of the token's ASCII."""
    digest = hashlib.sha256(access_token.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check_proof(proof: str, *, method: str, url: str, now: float,
                algorithms: Iterable[str] = SUPPORTED_ALGS, window: float = DEFAULT_WINDOW,
                access_token: str | None = None) -> DPoPProof:
    """Every stateless check of RFC 9449 §4.3; raises ``InvalidProof`` with the reason.

    ``url`` is the request's URI (query and fragment are ignored); ``access_token`` is
    given at resource servers, where ``ath`` is then required and must match.
    """
    check_size(proof)
    key = read_header(proof, algorithms)
    claims = parse_claims(verify_signature(proof, key))
    check_method(claims, method)
    check_url(claims, url)
    check_iat(claims, now, window)
    if access_token is not None:
        check_ath(claims, access_token)
    return DPoPProof(key.jkt, *claims)


def check_size(proof: object) -> None:
    if not isinstance(proof, str) or not proof:
        raise InvalidProof("malformed", "empty proof")
    if len(proof) > MAX_PROOF_LENGTH:
        raise InvalidProof("malformed", "proof too long")


def read_header(proof: str, algorithms: Iterable[str]) -> _ProofKey:
    """typ, alg (in ``algorithms`` and supported), a public ``jwk`` fitting alg (§4.3
    checks 2–5, 7); the key and its thumbprint."""
    segment = proof.partition(".")[0]
    key = _keys.get(segment)
    if key is None:
        key = _check_header(proof)
        if len(_keys) >= _MEMO_SIZE:
            _keys.clear()
        _keys[segment] = key
    if key.alg not in algorithms:
        raise InvalidProof("bad_algorithm", f"alg {key.alg} not allowed here")
    return key


def _check_header(proof: str) -> _ProofKey:
    try:
        header = jose.read_header(proof).members
    except jose.JoseError as exc:
        raise InvalidProof("malformed", exc.detail) from None
    typ, alg, jwk = header.get("typ"), header.get("alg"), header.get("jwk")
    try:  # the RFC 8725 typ and alg rules, as for access tokens and envelopes
        check_typ(typ, _TYPS)
        alg = check_algorithm(alg, _ALGS)
    except TokenRejected as exc:
        raise InvalidProof(exc.reason.value, exc.detail) from None
    if "crit" in header:
        raise InvalidProof("malformed", "critical header extensions are not understood")
    if not isinstance(jwk, dict):
        raise InvalidProof("bad_key", "no jwk header")
    if _PRIVATE_MEMBERS & jwk.keys():
        raise InvalidProof("bad_key", "the jwk holds private key material")
    if jwk.get("kty") != _KTY[alg]:
        raise InvalidProof("bad_key", f"kty does not fit {alg}")
    try:
        public_key, jkt = jose.import_jwk(jwk)
    except ValueError as exc:
        raise InvalidProof("bad_key", f"unusable jwk: {exc}") from None
    if not jose.key_fits(alg, public_key):
        raise InvalidProof("bad_key", f"the jwk does not fit {alg}")
    return _ProofKey(alg, jose.VerificationKey("dpop", alg, public_key), jkt)


def verify_signature(proof: str, key: _ProofKey) -> bytes:
    """§4.3 check 6: the signature verifies with the header's jwk (alg pinned)."""
    try:
        return jose.verify(proof, key.key)
    except jose.JoseError as exc:
        raise InvalidProof("bad_signature" if exc.reason == "bad_signature" else "malformed",
                           exc.detail) from None


class _Claims(NamedTuple):
    jti: str
    htm: str
    htu: str
    iat: float
    ath: str | None
    nonce: str | None


def parse_claims(payload: bytes) -> _Claims:
    """§4.3 check 3: ``jti``, ``htm``, ``htu`` and ``iat`` present and well typed."""
    try:
        claims = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise InvalidProof("malformed", "payload is not JSON") from None
    if type(claims) is not dict:
        raise InvalidProof("malformed", "payload is not a JSON object")
    jti, htm, htu = _string(claims, "jti"), _string(claims, "htm"), _string(claims, "htu")
    if len(jti) > _MAX_CLAIM_LENGTH:
        raise InvalidProof("malformed", "jti too long")
    iat = claims.get("iat")
    if type(iat) not in (int, float) or not isinstance(iat, int | float):
        raise InvalidProof("missing_claim", "iat missing or not a number")
    ath, nonce = claims.get("ath"), claims.get("nonce")
    for name, value in (("ath", ath), ("nonce", nonce)):
        if value is not None and (type(value) is not str or len(value) > _MAX_CLAIM_LENGTH):
            raise InvalidProof("malformed", f"{name} is not a string")
    return _Claims(jti, htm, htu, float(iat), ath, nonce)


def _string(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if type(value) is not str or not value:
        raise InvalidProof("missing_claim", f"{name} missing or not a string")
    if len(value) > MAX_HTU_LENGTH:
        raise InvalidProof("malformed", f"{name} too long")
    return value


def check_method(claims: _Claims, method: str) -> None:
    """§4.3 check 8: ``htm`` is the request's method."""
    if claims.htm != method:
        raise InvalidProof("wrong_method", f"htm {claims.htm[:16]!r} for {method}")


def check_url(claims: _Claims, url: str) -> None:
    """§4.3 check 9: ``htu`` is the request's URI, query and fragment ignored, both
    normalised (RFC 3986 §6.2.2–6.2.3)."""
    try:
        matches = normalize_htu(claims.htu) == normalize_htu(url)
    except ValueError as exc:
        raise InvalidProof("wrong_url", str(exc)) from None
    if not matches:
        raise InvalidProof("wrong_url", "htu is not this request's URI")


def check_iat(claims: _Claims, now: float, window: float) -> None:
    """§4.3 check 11: issued within ``window`` seconds of now (either side: clock skew)."""
    if claims.iat < now - window:
        raise InvalidProof("expired", f"iat {now - claims.iat:.0f}s ago")
    if claims.iat > now + window:
        raise InvalidProof("issued_in_future", f"iat {claims.iat - now:.0f}s ahead")


def check_ath(claims: _Claims, access_token: str) -> None:
    """§4.3 check 12 (resource servers): ``ath`` is the hash of the presented token."""
    if claims.ath is None:
        raise InvalidProof("missing_ath", "the proof has no ath")
    # bytes, not str: compare_digest refuses non-ASCII strings (an attacker's ath) with
    # a TypeError
    if not constant_time_equal(claims.ath, access_token_hash(access_token)):
        raise InvalidProof("wrong_ath", "ath does not match the access token")
