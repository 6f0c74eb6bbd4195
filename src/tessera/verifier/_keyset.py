"""Verification keys from a JWKS (RFC 7517 §5), each bound to exactly one algorithm.

Every published key must name its ``alg``; the key type has to fit it (RS256 → RSA of at
least 2048 bits, ES256 → EC P-256, EdDSA → OKP Ed25519) and a token is only ever verified
with the algorithm of the key its ``kid`` names (RFC 8725 §3.1). Keys that do not meet
this are left out (listed in ``KeySet.rejected``), never guessed at.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from tessera import jose
from tessera.protocol.rfc9068.validator import ALLOWED_ALGS
from tessera.verifier.errors import InvalidJwks

__all__ = ["ALLOWED_ALGS", "KeySet", "PublicKey", "VerificationKey"]

PublicKey = jose.PublicKey
VerificationKey = jose.VerificationKey
"""A public key usable for exactly one algorithm, prepared once (``tessera.jose``)."""

_MEMBERS: Final = {"RSA": ("n", "e"), "EC": ("crv", "x", "y"), "OKP": ("crv", "x")}


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
    kty = jose.KTY[alg]
    if jwk.get("kty") != kty:
        raise _Unusable(f"kty {jwk.get('kty')!r} does not fit {alg}")
    if jose.PRIVATE_MEMBERS & jwk.keys():
        raise _Unusable("private key material published")
    values = [jwk.get(m) for m in _MEMBERS[kty]]
    if not all(isinstance(v, str) and v for v in values):
        raise _Unusable("missing key parameters")
    material = (kty, alg, *(str(v) for v in values))
    if previous is not None:
        old = previous.get(kid)
        if old is not None and old.material == material:
            return old
    try:
        return VerificationKey(kid, alg, jose.load_public_jwk(alg, jwk), material)
    except jose.JoseError as exc:
        raise _Unusable(exc.detail) from None
