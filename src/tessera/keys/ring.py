"""The key ring: one active key per algorithm signs, every published key verifies.

States move one way: next → active → retiring → retired, per algorithm. JWKS publishes
next, active and retiring keys, so caches learn a key before it signs and keep it until
every token it signed has expired (DESIGN §5).

A ring may hold keys of several algorithms (issue 15): access tokens are signed with the
*primary* algorithm (ES256 by default: cheap to sign and to verify), ID tokens with the one
OIDC requires clients to support (RS256). Each algorithm has its own active key and
rotates on its own (``plan_rotation`` takes one algorithm's keys).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tessera import jose
from tessera.keys.errors import KeyError_, TokenInvalid

__all__ = ["KeyRing", "KeyState", "RingHolder", "SigningKey", "load_signing_key",
           "new_signing_key",
           "plan_rotation"]


class KeyState(StrEnum):
    NEXT = "next"
    ACTIVE = "active"
    RETIRING = "retiring"
    RETIRED = "retired"


_PUBLISHED = (KeyState.NEXT, KeyState.ACTIVE, KeyState.RETIRING)


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    alg: str
    state: KeyState
    private_key: jose.PrivateKey
    created_at: float
    changed_at: float

    @property
    def public_jwk(self) -> dict[str, Any]:
        return jose.public_jwk(self.private_key, kid=self.kid, alg=self.alg)

    def private_pem(self) -> bytes:
        return jose.private_pem(self.private_key)

    def with_state(self, state: KeyState, at: float) -> SigningKey:
        return SigningKey(self.kid, self.alg, state, self.private_key, self.created_at, at)


def new_signing_key(alg: str, *, state: KeyState, now: float) -> SigningKey:
    kid = f"{alg.lower()}-{secrets.token_hex(6)}"
    try:
        return SigningKey(kid, alg, state, jose.generate(alg), now, now)
    except jose.JoseError:
        raise KeyError_(f"unsupported algorithm {alg[:20]!r}") from None


def load_signing_key(kid: str, alg: str, state: str, pem: bytes, created_at: float,
                     changed_at: float) -> SigningKey:
    """A key from its stored form; raises ``KeyError_`` if any part does not fit."""
    try:
        key_state = KeyState(state)
    except ValueError:
        raise KeyError_(f"unknown key state {state[:20]!r}") from None
    try:
        private_key = jose.load_private_pem(pem)
        jose.check_alg(private_key, alg)
    except jose.JoseError as exc:
        raise KeyError_(exc.detail) from None
    return SigningKey(kid, alg, key_state, private_key, created_at, changed_at)


def plan_rotation(
    keys: Iterable[SigningKey], *, now: float, retire_after: float
) -> dict[str, KeyState]:
    """State changes for one rotation: next→active, active→retiring, and retiring keys
    whose last token has expired (``retire_after`` seconds in retiring) → retired.

    The caller adds a fresh ``next`` key. Without a ``next`` key there is nothing to
    promote, so the rotation is refused rather than leaving the ring without a signer.
    """
    keys = list(keys)
    if not any(k.state is KeyState.NEXT for k in keys):
        raise KeyError_("no next key to promote; run a rotation bootstrap first")
    changes: dict[str, KeyState] = {}
    for key in keys:
        if key.state is KeyState.NEXT:
            changes[key.kid] = KeyState.ACTIVE
        elif key.state is KeyState.ACTIVE:
            changes[key.kid] = KeyState.RETIRING
        elif key.state is KeyState.RETIRING and now - key.changed_at >= retire_after:
            changes[key.kid] = KeyState.RETIRED
    return changes


class KeyRing:
    """Signs with the active key of an algorithm; verifies with any published key, by
    ``kid``, with that key's own algorithm only.

    ``primary``: the algorithm ``active`` and ``sign`` use by default (access tokens). A
    ring without an active key of ``primary`` signs with its only active key, so a
    deployment that just changed ``keys.algorithm`` keeps working until its bootstrap adds
    the new algorithm's keys."""

    def __init__(self, keys: Iterable[SigningKey], *, primary: str | None = None) -> None:
        self._keys = {k.kid: k for k in keys}
        self._actives: dict[str, SigningKey] = {}
        for k in self._keys.values():
            if k.state is KeyState.ACTIVE:
                if k.alg in self._actives:
                    raise KeyError_(f"the ring needs one active key per algorithm, found "
                                    f"several for {k.alg}")
                self._actives[k.alg] = k
        if not self._actives:
            raise KeyError_("the ring needs an active key, found none")
        if primary is not None and primary in self._actives:
            self._active = self._actives[primary]
        else:
            self._active = min(self._actives.values(), key=lambda k: (k.created_at, k.kid))
        self._verification = {
            k.kid: jose.VerificationKey(k.kid, k.alg, k.private_key.public_key())
            for k in self._keys.values() if k.state in _PUBLISHED
        }
        self._signers = {alg: jose.Signer(k.private_key, alg=alg, kid=k.kid)
                         for alg, k in self._actives.items()}
        self._jwks = {"keys": [k.public_jwk for k in self._keys.values() if k.state in _PUBLISHED]}

    @property
    def active(self) -> SigningKey:
        """The active key of the primary algorithm (access tokens)."""
        return self._active

    def active_for(self, alg: str | None) -> SigningKey:
        """The active key of ``alg``; the primary one when the ring has none of ``alg``."""
        if alg is None:
            return self._active
        return self._actives.get(alg, self._active)

    @property
    def algorithms(self) -> tuple[str, ...]:
        """Algorithms with an active key, the primary first."""
        return (self._active.alg, *sorted(a for a in self._actives if a != self._active.alg))

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._verification)

    def jwks(self) -> dict[str, Any]:
        return self._jwks

    def sign(self, claims: dict[str, Any], *, typ: str, alg: str | None = None) -> str:
        """A JWS of ``claims`` by the active key of ``alg`` (default: the primary one)."""
        return self._signers[self.active_for(alg).alg].sign(claims, typ=typ)

    @property
    def verification_keys(self) -> Mapping[str, jose.VerificationKey]:
        """The published keys (next, active, retiring) by ``kid``, prepared for verifying
        (``protocol.rfc9068.validator``'s ``KeyLookup``)."""
        return self._verification

    def verify(
        self,
        token: str,
        *,
        typ: str | None,
        issuer: str,
        audience: str | list[str] | None,
        now: float,
        leeway: float,
        verify_exp: bool = True,
    ) -> dict[str, Any]:
        """Verify a JWS we issued that is not an access token (ID tokens, logout tokens;
        access tokens are ``protocol.rfc9068.validator``'s). Raises ``TokenInvalid``."""
        try:
            header = jose.read_header(token)
        except jose.JoseError as exc:
            raise TokenInvalid(exc.reason, exc.detail) from None
        kid = header.kid
        key = self._verification.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenInvalid("unknown_kid")
        if header.alg != key.alg:
            raise TokenInvalid("bad_algorithm")
        if typ is not None and str(header.typ or "").lower() not in _typ_forms(typ):
            raise TokenInvalid("wrong_typ")
        try:
            return jose.decode(token, key.public_key, algorithms=[key.alg], issuer=issuer,
                               audience=audience, leeway=leeway, now=now,
                               verify_exp=verify_exp)
        except jose.JoseError as exc:
            raise TokenInvalid(exc.reason, exc.detail) from None


def _typ_forms(typ: str) -> tuple[str, str]:
    """RFC 9068 §4: ``at+jwt`` and ``application/at+jwt`` are the same media type."""
    t = typ.lower()
    return (t, f"application/{t}")


class RingHolder:
    """The current key ring, swapped whole when the store's keys change."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
