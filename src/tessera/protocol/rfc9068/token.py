"""An RFC 9068 access token once verified, the reasons a token is refused, and the one
exception that carries them: the vocabulary shared by the validator
(``protocol.rfc9068.validator``), the identity service and the verifier SDK.

``parse_claims`` checks presence and types only; what the values must be (issuer,
audience, time, binding, revocation) is decided by the validator.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NamedTuple, cast

__all__ = ["Reason", "TokenRejected", "VerifiedToken", "parse_claims"]


class Reason(StrEnum):
    """Why a token was rejected. Values are stable: metrics and audit events use them."""

    MALFORMED = "malformed"
    UNKNOWN_KID = "unknown_kid"
    BAD_SIGNATURE = "bad_signature"
    BAD_ALGORITHM = "bad_algorithm"
    WRONG_TYP = "wrong_typ"
    WRONG_ISSUER = "wrong_issuer"
    WRONG_AUDIENCE = "wrong_audience"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    TOKEN_REVOKED = "token_revoked"
    SESSION_REVOKED = "session_revoked"
    STALE_SESSION_VERSION = "stale_session_version"
    USER_REVOKED = "user_revoked"
    TENANT_REVOKED = "tenant_revoked"
    CLIENT_REVOKED = "client_revoked"
    FAMILY_REVOKED = "family_revoked"
    STALE_STATE = "stale_state"
    INSUFFICIENT_USER_AUTHENTICATION = "insufficient_user_authentication"
    INVALID_DPOP_PROOF = "invalid_dpop_proof"
    DPOP_REPLAYED = "dpop_replayed"
    USE_DPOP_NONCE = "use_dpop_nonce"
    DPOP_BINDING = "dpop_binding"
    """RFC 9449 §7: a bound token sent as Bearer, an unbound one as DPoP, or a proof
    signed by another key than the token's ``cnf.jkt``."""
    CERTIFICATE_BINDING = "certificate_binding"
    """RFC 8705 §3: a certificate-bound token (``cnf.x5t#S256``) on a request without
    that client certificate."""


class TokenRejected(Exception):
    """The token is refused; ``reason`` says why, ``detail`` is for logs only. The SDK's
    ``Denied`` is one of these (and a ``VerifierError``)."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(reason.value if not detail else f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class VerifiedToken(NamedTuple):
    """An access token whose signature has been verified. Immutable; safe to cache.

    A ``NamedTuple`` rather than a frozen dataclass: it is built on every cold
    verification and a frozen dataclass costs ~1.6 µs more to construct.
    """

    kid: str
    alg: str
    iss: str
    sub: str
    aud: tuple[str, ...]
    exp: float
    iat: float
    nbf: float | None
    jti: str
    client_id: str
    scopes: frozenset[str]
    tid: str
    sid: str | None
    """Session id; absent for client_credentials tokens."""
    sv: int | None
    """Session version; present exactly when ``sid`` is."""
    acr: str | None
    amr: tuple[str, ...]
    auth_time: float | None
    cnf_jkt: str | None
    """RFC 9449 DPoP key thumbprint (``cnf.jkt``), if the token is sender-constrained."""
    act: Mapping[str, Any] | None
    """RFC 8693 §4.1 actor chain, if the token was obtained by delegation."""
    claims: Mapping[str, Any]
    """Every claim, read-only."""

    # The claim names as the vocabulary says them (docs/architecture.md): code that acts
    # on a token reads these, never ``claims.get("sub")`` / ``claims.get("tid")``.
    @property
    def user_id(self) -> str:
        """``sub``: the user, or for a client-credentials token the client itself."""
        return self.sub

    @property
    def tenant_id(self) -> str:
        """``tid``."""
        return self.tid


_NUMBER = (int, float)  # ``type(x) in _NUMBER`` also rules out bool


def parse_claims(claims: object, *, kid: str, alg: str) -> VerifiedToken:
    """Build a ``VerifiedToken`` from a decoded payload; ``Denied(malformed)`` on bad shape.

    Written as straight-line type checks (this runs on every cold verification); on
    failure ``_diagnose`` names the offending claim.
    """
    if type(claims) is not dict:
        raise TokenRejected(Reason.MALFORMED, "payload is not a JSON object")
    get = claims.get
    iss, sub, jti, client_id, tid = (
        get("iss"), get("sub"), get("jti"), get("client_id"), get("tid"),
    )
    exp, iat, nbf, auth_time = get("exp"), get("iat"), get("nbf"), get("auth_time")
    aud, scope, sid, sv = get("aud"), get("scope", ""), get("sid"), get("sv")
    acr, amr, cnf, act = get("acr"), get("amr"), get("cnf"), get("act")
    if type(aud) is str:
        audience: tuple[str, ...] = (aud,)
    elif type(aud) is list and aud and _all_str(aud):
        audience = tuple(aud)
    else:
        raise TokenRejected(Reason.MALFORMED, "aud missing or not a string or list of strings")
    if not (
        type(iss) is str and iss and type(sub) is str and sub and type(jti) is str and jti
        and type(client_id) is str and client_id and type(tid) is str and tid
        and type(exp) in _NUMBER and type(iat) in _NUMBER
        and (nbf is None or type(nbf) in _NUMBER)
        and (auth_time is None or type(auth_time) in _NUMBER)
        and type(scope) is str
        and ((sid is None and sv is None) or (type(sid) is str and sid and type(sv) is int))
        and (acr is None or (type(acr) is str and acr))
        and (amr is None or (type(amr) is list and _all_str(amr)))
        and (cnf is None or (type(cnf) is dict and _optional_str(cnf.get("jkt"))))
        and (act is None or type(act) is dict)
    ):
        raise TokenRejected(Reason.MALFORMED, _diagnose(claims))
    return VerifiedToken(
        kid, alg, iss, sub, audience, cast(float, exp), cast(float, iat), nbf, jti, client_id,
        frozenset(scope.split()), tid, sid, sv, acr, tuple(amr) if amr else (), auth_time,
        cnf.get("jkt") if cnf is not None else None,
        MappingProxyType(act) if act is not None else None,
        MappingProxyType(claims),
    )


def _all_str(values: list[Any]) -> bool:
    """Every item a string (JSON decoders give exact ``str``). ``str.join`` checks that in
    C: several times cheaper than ``all()`` over a generator, on every cold verify."""
    try:
        "".join(values)
    except TypeError:
        return False
    return True


def _optional_str(value: object) -> bool:
    return value is None or (type(value) is str and bool(value))


def _diagnose(claims: dict[str, Any]) -> str:
    """The first claim with a wrong shape, for the log."""
    for name in ("iss", "sub", "jti", "client_id", "tid"):
        if type(claims.get(name)) is not str or not claims[name]:
            return f"{name} missing or not a string"
    for name in ("exp", "iat"):
        if type(claims.get(name)) not in _NUMBER:
            return f"{name} missing or not a number"
    for name in ("nbf", "auth_time"):
        if claims.get(name) is not None and type(claims[name]) not in _NUMBER:
            return f"{name} is not a number"
    if type(claims.get("scope", "")) is not str:
        return "scope is not a string"
    if claims.get("sid") is None and claims.get("sv") is not None:
        return "sv without sid"
    if claims.get("sid") is not None and (
        type(claims["sid"]) is not str or type(claims.get("sv")) is not int
    ):
        return "sid must be a string with an integer sv"
    if not _optional_str(claims.get("acr")):
        return "acr is not a string"
    amr = claims.get("amr")
    if amr is not None and (type(amr) is not list or any(type(m) is not str for m in amr)):
        return "amr is not a list of strings"
    cnf = claims.get("cnf")
    if cnf is not None and (type(cnf) is not dict or not _optional_str(cnf.get("jkt"))):
        return "cnf is not an object with a string jkt"
    return "act is not an object"
