"""Access token issuance (RFC 9068 §2) and validation (§4)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from tessera.core.clients import Client
from tessera.core.scopes import format_scope
from tessera.core.secrets import new_id
from tessera.keys import RingHolder
from tessera.protocol.http import OAuthRequest
from tessera.protocol.rfc8705 import MTLS_AUTH_METHODS, certificate_thumbprint, load_certificate
from tessera.protocol.rfc9068 import validator
from tessera.protocol.rfc9068.cache import VerifiedTokenCache, verify_signed_cached
from tessera.protocol.rfc9068.reference import ReferenceTokens, looks_like_jwt
from tessera.protocol.rfc9068.token import VerifiedToken

__all__ = ["AT_TYP", "AccessTokenClaims", "AccessTokenIssuer", "new_jti"]

AT_TYP = "at+jwt"


def new_jti() -> str:
    return new_id()


@dataclass(frozen=True, slots=True)
class AccessTokenClaims:
    """What a token says; ``to_jwt_claims`` renders RFC 9068 §2.2 plus DESIGN §2."""

    sub: str
    client_id: str
    audience: tuple[str, ...]
    scope: frozenset[str]
    iat: int
    exp: int
    jti: str
    tenant_id: str | None = None
    sid: str | None = None
    sv: int | None = None
    acr: str | None = None
    amr: tuple[str, ...] = ()
    auth_time: int | None = None
    act: dict[str, Any] | None = None
    """RFC 8693 §4.1: who acts for ``sub`` (nested for a chain of delegations)."""
    jkt: str | None = None
    """RFC 9449 §6: thumbprint of the DPoP key the token is bound to (``cnf.jkt``)."""
    x5t: str | None = None
    """RFC 8705 §3.1: thumbprint of the client certificate it is bound to
    (``cnf.x5t#S256``)."""

    def to_jwt_claims(self, issuer: str) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "iss": issuer,
            "sub": self.sub,
            "aud": self.audience[0] if len(self.audience) == 1 else list(self.audience),
            "exp": self.exp,
            "iat": self.iat,
            "nbf": self.iat,
            "jti": self.jti,
            "client_id": self.client_id,
            "scope": format_scope(self.scope),
        }
        if self.tenant_id is not None:
            claims["tid"] = self.tenant_id
        if self.sid is not None:
            claims["sid"] = self.sid
            claims["sv"] = self.sv
        if self.acr is not None:
            claims["acr"] = self.acr
        if self.amr:
            claims["amr"] = list(self.amr)
        if self.auth_time is not None:
            claims["auth_time"] = self.auth_time
        if self.act is not None:
            claims["act"] = self.act
        cnf: dict[str, str] = {}
        if self.jkt is not None:
            cnf["jkt"] = self.jkt
        if self.x5t is not None:
            cnf["x5t#S256"] = self.x5t
        if cnf:
            claims["cnf"] = cnf
        return claims


class AccessTokenIssuer:
    def __init__(self, keys: RingHolder, *, issuer: str, ttl: int,
                 references: ReferenceTokens | None = None) -> None:
        """``references``: where reference tokens live (clients registered with
        ``access_token_format: reference``); without it such clients get no token."""
        self._keys = keys
        self.issuer = issuer
        self.ttl = ttl
        self._references = references
        self._verified = VerifiedTokenCache()
        """Resource servers introspect the same token over and over: a repeat skips the
        signature check (``cache``); every other check runs each time."""

    def sign(self, claims: AccessTokenClaims) -> str:
        return self._keys.ring.sign(claims.to_jwt_claims(self.issuer), typ=AT_TYP)

    async def issue(self, claims: AccessTokenClaims, client: Client,
                    request: OAuthRequest | None = None) -> str:
        """The access token in the client's format: a signed JWT, or a reference. A client
        that authenticated with mutual TLS (RFC 8705 §3) gets it bound to the certificate
        of ``request``'s connection (``cnf.x5t#S256``)."""
        if (request is not None and request.client_cert is not None
                and client.auth_method in MTLS_AUTH_METHODS):
            claims = replace(claims, x5t=certificate_thumbprint(
                load_certificate(request.client_cert)))
        if client.access_token_format != "reference":
            return self.sign(claims)
        if self._references is None:
            raise RuntimeError("reference tokens are not configured")
        return await self._references.mint(claims.to_jwt_claims(self.issuer))

    async def resolve(self, token: str, *, now: float, leeway: float,
                      audience: str | None = None) -> VerifiedToken:
        """A JWT access token (``verify``) or a reference token, with its signature (JWT)
        and ``iss``/``aud``/times checked by the one validator; raises ``TokenRejected``.
        Binding and live state (revocation) are ``token_state``'s."""
        expect = _Expect(self.issuer, audience, leeway)
        if looks_like_jwt(token) or self._references is None:
            return self._verify(token, expect, now)
        return await self._references.resolve(token, expect=expect, now=now)

    def verify(self, token: str, *, now: float, leeway: float,
               audience: str | None = None) -> VerifiedToken:
        """Signature, ``typ``, ``iss``, times (and ``aud`` when given) of a JWT access
        token (``validator``). Raises ``TokenRejected``."""
        return self._verify(token, _Expect(self.issuer, audience, leeway), now)

    def _verify(self, token: str, expect: _Expect, now: float) -> VerifiedToken:
        verified, fresh_key = verify_signed_cached(
            token, self._keys.ring.verification_keys, self._verified)
        validator.check_claims(verified, expect, now)
        if fresh_key is not None:
            self._verified.put(token, (verified, fresh_key))
        return verified


@dataclass(frozen=True, slots=True)
class _Expect:
    """``validator.Expectations`` of the identity service: its issuer; the audience of
    the endpoint (None: any, for introspection and revocation)."""

    issuer: str
    audience: str | None
    leeway: float
