"""Verification keys from a JWKS (RFC 7517 §5), each bound to exactly one algorithm.

Every published key must name its ``alg``; the key type has to fit it (RS256 → RSA of at
least 2048 bits, ES256 → EC P-256, EdDSA → OKP Ed25519) and a token is only ever verified
with the algorithm of the key its ``kid`` names (RFC 8725 §3.1). Keys that do not meet
this are left out (listed in ``KeySet.rejected``), never guessed at.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from tessera.verifier.errors import InvalidJwks

__all__ = ["ALLOWED_ALGS", "KeySet", "PublicKey", "VerificationKey"]

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

ALLOWED_ALGS: Final = frozenset({"RS256", "ES256", "EdDSA"})
"""The only algorithms a Tessera access token may use."""

_MIN_RSA_BITS: Final = 2048
_KTY: Final = {"RS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}
_MEMBERS: Final = {"RSA": ("n", "e"), "EC": ("crv", "x", "y"), "OKP": ("crv", "x")}
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


@dataclass(frozen=True, slots=True, eq=False)
class VerificationKey:
    """A public key usable for exactly one algorithm."""

    kid: str
    alg: str
    public_key: PublicKey
    material: tuple[str, ...]
    """The JWK members that define the key (kty, alg and the public parameters)."""


class KeySet:
    """An immutable ``kid`` → ``VerificationKey`` map."""

    __slots__ = ("_keys", "rejected")

    def __init__(
        self, keys: Iterable[VerificationKey], *, rejected: Iterable[tuple[str, str]] = ()
    ) -> None:
        self._keys: dict[str, VerificationKey] = {k.kid: k for k in keys}
        self.rejected: tuple[tuple[str, str], ...] = tuple(rejected)
        """``(kid or #index, why)`` for every published key that was left out."""

    @classmethod
    def from_jwks(
        cls, document: Mapping[str, Any], *, previous: KeySet | None = None
    ) -> KeySet:
        """Parse a JWKS document; keys equal to ones in ``previous`` are reused as is.

        Raises ``InvalidJwks`` if the document is not ``{"keys": [...]}``. A kid that
        appears twice is ambiguous and dropped entirely.
        """
        if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
            raise InvalidJwks("a JWKS is an object with a 'keys' array")
        parsed: dict[str, VerificationKey] = {}
        rejected: list[tuple[str, str]] = []
        duplicates: set[str] = set()
        for index, jwk in enumerate(document["keys"]):
            name = jwk.get("kid") if isinstance(jwk, Mapping) else None
            label = name if isinstance(name, str) and name else f"#{index}"
            try:
                key = _parse_jwk(jwk, previous)
            except _Unusable as exc:
                rejected.append((label, str(exc)))
                continue
            if key.kid in parsed or key.kid in duplicates:
                duplicates.add(key.kid)
                parsed.pop(key.kid, None)
                rejected.append((label, "duplicate kid"))
                continue
            parsed[key.kid] = key
        return cls(parsed.values(), rejected=rejected)

    def get(self, kid: str) -> VerificationKey | None:
        return self._keys.get(kid)

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

    def __iter__(self) -> Iterator[VerificationKey]:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def __repr__(self) -> str:
        return f"KeySet(kids={sorted(self._keys)!r})"


class _Unusable(Exception):
    pass


def _parse_jwk(jwk: object, previous: KeySet | None) -> VerificationKey:
    if not isinstance(jwk, Mapping):
        raise _Unusable("not an object")
    kid, alg = jwk.get("kid"), jwk.get("alg")
    if not isinstance(kid, str) or not kid:
        raise _Unusable("missing kid")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGS:
        raise _Unusable(f"alg {alg!r} not allowed")
    if jwk.get("use", "sig") != "sig":
        raise _Unusable("not a signature key")
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise _Unusable("key_ops does not allow verify")
    kty = _KTY[alg]
    if jwk.get("kty") != kty:
        raise _Unusable(f"kty {jwk.get('kty')!r} does not fit {alg}")
    if _PRIVATE_MEMBERS & jwk.keys():
        raise _Unusable("private key material published")
    values = [jwk.get(m) for m in _MEMBERS[kty]]
    if not all(isinstance(v, str) and v for v in values):
        raise _Unusable("missing key parameters")
    material = (kty, alg, *(str(v) for v in values))
    if previous is not None:
        old = previous.get(kid)
        if old is not None and old.material == material:
            return old
    return VerificationKey(kid, alg, _load_public_key(alg, dict(jwk)), material)


def _load_public_key(alg: str, jwk: dict[str, Any]) -> PublicKey:
    try:
        if alg == "RS256":
            rsa_key = RSAAlgorithm.from_jwk(jwk)
            if not isinstance(rsa_key, rsa.RSAPublicKey):
                raise _Unusable("not an RSA public key")
            if rsa_key.key_size < _MIN_RSA_BITS:
                raise _Unusable(f"RSA key shorter than {_MIN_RSA_BITS} bits")
            return rsa_key
        if alg == "ES256":
            if jwk.get("crv") != "P-256":
                raise _Unusable("ES256 needs curve P-256")
            ec_key = ECAlgorithm.from_jwk(jwk)
            if not isinstance(ec_key, ec.EllipticCurvePublicKey):
                raise _Unusable("not an EC public key")
            return ec_key
        if jwk.get("crv") != "Ed25519":
            raise _Unusable("EdDSA needs curve Ed25519")
        okp_key = OKPAlgorithm.from_jwk(jwk)
        if not isinstance(okp_key, ed25519.Ed25519PublicKey):
            raise _Unusable("not an Ed25519 public key")
        return okp_key
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise _Unusable(f"invalid key: {exc}") from None
