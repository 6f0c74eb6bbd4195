"""Client authentication with a signed JWT instead of a shared secret.

- ``private_key_jwt`` (RFC 7523 §2.2 and §3, OIDC Core §9): the client signs an assertion
  with ``iss`` = ``sub`` = its ``client_id``, checked against the keys it registered
  (``jwks`` document or ``jwks_uri``, refetched once on an unknown ``kid``).
- ``workload_identity``: the assertion is a workload's own identity token — a SPIFFE
  JWT-SVID or a Kubernetes projected service-account token — checked against the
  configured trust bundle / issuer JWKS, with the configured ``iss`` and ``sub``
  (``spiffe://…`` or ``system:serviceaccount:ns:name``). The request names the client with
  ``client_id``, since the token's ``iss``/``sub`` are the workload's.

Rules for both (RFC 7523 §3, RFC 7523bis / draft-ietf-oauth-rfc7523bis §4, RFC 8725):
signature by an allow-listed asymmetric algorithm (never ``none`` or HMAC), ``aud`` names
this issuer or its token endpoint and nothing else, ``exp`` required and not too far
ahead, ``nbf``/``iat`` not in the future. A ``private_key_jwt`` assertion must carry a
``jti``, usable once until it expires (§3 item 7). Workload tokens are reusable bearer
credentials by design (a pod re-reads its mounted token): they are bounded by audience
and a short lifetime instead.

JOSE parsing and signature checks are PyJWT's; only the claim rules live here. Key sets
arrive through a ``KeySetSource`` port (the identity service fetches with httpx).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tessera import jose
from tessera.core.clients import Client
from tessera.core.clock import Clock
from tessera.protocol.errors import InvalidClient
from tessera.store.ports import Store

__all__ = ["ASSERTION_ALGS", "CLIENT_ASSERTION_TYPE", "AssertionRules", "ClientAssertions",
           "KeySetSource", "KeySetUnavailable", "unverified_client_id"]

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGS = ("RS256", "PS256", "ES256", "EdDSA")
"""Asymmetric algorithms accepted for client assertions (advertised as
``token_endpoint_auth_signing_alg_values_supported``)."""
_MAX_ASSERTION = 8192


class KeySetUnavailable(Exception):
    """A ``jwks_uri`` could not be fetched or did not hold a JWK Set."""


class KeySetSource(Protocol):
    async def get(self, uri: str, *, refresh: bool = False) -> Mapping[str, Any]:
        """The JWK Set document at ``uri`` (cached). ``refresh``: the cached one lacks a
        key; refetch unless that was done very recently. Raises ``KeySetUnavailable``."""


@dataclass(frozen=True, slots=True)
class AssertionRules:
    issuer: str
    token_endpoint: str
    max_lifetime: float = 300.0
    """``private_key_jwt``: how far ahead ``exp`` may be (RFC 7523 §3 lets the server
    bound it; a short life keeps the ``jti`` store small)."""
    workload_max_lifetime: float = 86_400.0
    """Workload tokens: Kubernetes projects them for an hour by default (at least ten
    minutes); a SPIFFE JWT-SVID lives minutes."""
    leeway: float = 60.0


def unverified_client_id(assertion: str) -> str | None:
    """The ``iss`` of an assertion before any check, to find the client it claims to be
    (RFC 7523 §3: for client authentication ``iss`` is the ``client_id``)."""
    try:
        claims = jose.unverified_claims(assertion)
    except jose.JoseError:
        return None
    iss = claims.get("iss") if isinstance(claims, dict) else None
    return iss if isinstance(iss, str) and 0 < len(iss) <= 200 else None


def _refuse(detail: str) -> InvalidClient:
    return InvalidClient("client authentication failed", detail=detail)


class ClientAssertions:
    def __init__(self, store: Store, clock: Clock, keys: KeySetSource,
                 rules: AssertionRules) -> None:
        self._store = store
        self._clock = clock
        self._keys = keys
        self._rules = rules

    async def authenticate(self, client: Client, assertion: str) -> None:
        """Accept ``assertion`` as ``client``'s credential or raise ``InvalidClient``."""
        if len(assertion) > _MAX_ASSERTION:
            raise _refuse("oversized client assertion")
        workload = client.auth_method == "workload_identity"
        if client.auth_method not in ("private_key_jwt", "workload_identity"):
            raise _refuse(f"client {client.client_id!r} does not authenticate with keys")
        try:
            header = jose.unverified_header(assertion)
        except jose.JoseError:
            raise _refuse("malformed client assertion") from None
        alg = header.get("alg")
        if alg not in ASSERTION_ALGS:
            raise _refuse(f"client assertion algorithm {str(alg)[:20]!r} is not allowed")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _refuse("malformed kid")
        claims = await self._verified_claims(client, assertion, str(alg), kid,
                                             workload=workload)
        self._check_claims(client, claims, workload=workload)
        if not workload:
            await self._check_once(client, claims)

    async def _verified_claims(self, client: Client, assertion: str, alg: str,
                               kid: str | None, *, workload: bool) -> dict[str, Any]:
        inline = client.workload_jwks if workload else client.jwks
        uri = client.workload_jwks_uri if workload else client.jwks_uri
        if inline is None and uri is None:
            raise _refuse(f"client {client.client_id!r} has no keys registered")
        document = await self._key_set(inline, uri, refresh=False)
        candidates = _keys_for(document, kid, alg)
        if not candidates and uri is not None and kid is not None:
            # RFC 7517 §4.5 / OIDC Core §10.1.1: an unknown kid means the client rotated
            # its keys; fetch the set again, once, before refusing
            candidates = _keys_for(await self._key_set(None, uri, refresh=True), kid, alg)
        if not candidates:
            raise _refuse("no registered key fits the client assertion (unknown kid)")
        for key in candidates:
            try:
                return jose.verify_jws(assertion, key, alg=alg)
            except jose.JoseError as exc:
                if exc.reason == "bad_signature":
                    continue
                raise _refuse(f"client assertion refused: {exc.detail}") from None
        raise _refuse("client assertion signature does not verify")

    async def _key_set(self, inline: str | None, uri: str | None, *,
                       refresh: bool) -> Mapping[str, Any]:
        if inline is not None:
            try:
                document = json.loads(inline)
            except ValueError:
                raise _refuse("the registered JWK Set is not JSON") from None
            return document if isinstance(document, dict) else {}
        assert uri is not None
        try:
            return await self._keys.get(uri, refresh=refresh)
        except KeySetUnavailable as exc:
            raise _refuse(f"the client's jwks_uri is unavailable: {exc}") from None

    def _check_claims(self, client: Client, claims: dict[str, Any], *, workload: bool) -> None:
        rules, now = self._rules, self._clock.now()
        if workload:
            expected_iss, expected_sub = client.workload_issuer, client.workload_subject
        else:
            expected_iss = expected_sub = client.client_id
        if claims.get("iss") != expected_iss:
            raise _refuse("client assertion iss does not name the client")
        if claims.get("sub") != expected_sub:
            raise _refuse("client assertion sub does not name the client")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        # RFC 7523bis §4: the audience is this server alone. An assertion also addressed
        # to another party could be replayed here by that party (and vice versa).
        if not audiences or not all(a in (rules.issuer, rules.token_endpoint)
                                    for a in audiences):
            raise _refuse("client assertion aud must name only this issuer (or its "
                          "token endpoint)")
        exp = claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise _refuse("client assertion has no exp")
        if now >= exp + rules.leeway:
            raise _refuse("client assertion has expired")
        limit = rules.workload_max_lifetime if workload else rules.max_lifetime
        if exp - now > limit + rules.leeway:
            raise _refuse("client assertion expires too far in the future")
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _refuse(f"client assertion {name} is not a number")
            if now + rules.leeway < value:
                raise _refuse(f"client assertion {name} is in the future")

    async def _check_once(self, client: Client, claims: dict[str, Any]) -> None:
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= 200:
            raise _refuse("client assertion has no jti")
        now = self._clock.now()
        async with self._store.unit_of_work() as uow:
            fresh = await uow.assertion_jtis.use(
                client.client_id, jti, expires_at=float(claims["exp"]) + self._rules.leeway,
                now=now)
        if not fresh:
            raise _refuse("client assertion replayed (jti already used)")


def _keys_for(document: Mapping[str, Any], kid: str | None, alg: str) -> list[Any]:
    """Public keys of ``document`` that may verify an ``alg`` assertion: the one named by
    ``kid``, or without ``kid`` every key of the right type. Private or unusable members
    are skipped (a JWK Set with a private key is refused at registration)."""
    found: list[Any] = []
    raw = document.get("keys")
    if not isinstance(raw, list):
        return found
    for entry in raw:
        if not isinstance(entry, dict) or "d" in entry:
            continue
        if kid is not None and entry.get("kid") != kid:
            continue
        if entry.get("use") not in (None, "sig") or entry.get("alg") not in (None, alg):
            continue
        try:
            key = jose.load_jwk(entry, alg=alg)
        except jose.JoseError:
            continue
        found.append(key)
    return found
