"""The verified access token: typed RFC 9068 §2.2 claims plus Tessera's ``sid``/``sv``/``tid``.

``parse_claims`` checks presence and types only; what the values must be (issuer,
audience, time, scope, revocation) is decided in ``_claims`` and ``_revocation``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from tessera.verifier._errors import Denied, Reason

__all__ = ["VerifiedToken", "parse_claims"]


@dataclass(frozen=True, slots=True, eq=False)
class VerifiedToken:
    """An access token whose signature has been verified. Immutable; safe to cache."""

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


def parse_claims(claims: object, *, kid: str, alg: str) -> VerifiedToken:
    """Build a ``VerifiedToken`` from a decoded payload; ``Denied(malformed)`` on bad shape."""
    if not isinstance(claims, dict):
        raise Denied(Reason.MALFORMED, "payload is not a JSON object")
    sid = _opt_str(claims, "sid")
    sv = claims.get("sv")
    if sid is None:
        if sv is not None:
            raise Denied(Reason.MALFORMED, "sv without sid")
    elif not _is_int(sv):
        raise Denied(Reason.MALFORMED, "sid without an integer sv")
    cnf = claims.get("cnf")
    if cnf is not None and not isinstance(cnf, dict):
        raise Denied(Reason.MALFORMED, "cnf is not an object")
    act = claims.get("act")
    if act is not None and not isinstance(act, dict):
        raise Denied(Reason.MALFORMED, "act is not an object")
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise Denied(Reason.MALFORMED, "scope is not a string")
    return VerifiedToken(
        kid=kid,
        alg=alg,
        iss=_str(claims, "iss"),
        sub=_str(claims, "sub"),
        aud=_audience(claims.get("aud")),
        exp=_num(claims, "exp"),
        iat=_num(claims, "iat"),
        nbf=_opt_num(claims, "nbf"),
        jti=_str(claims, "jti"),
        client_id=_str(claims, "client_id"),
        scopes=frozenset(scope.split()),
        tid=_str(claims, "tid"),
        sid=sid,
        sv=sv,
        acr=_opt_str(claims, "acr"),
        amr=_str_list(claims.get("amr"), "amr"),
        auth_time=_opt_num(claims, "auth_time"),
        cnf_jkt=_opt_str(cnf, "jkt") if cnf is not None else None,
        act=MappingProxyType(act) if act is not None else None,
        claims=MappingProxyType(claims),
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _str(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise Denied(Reason.MALFORMED, f"{name} missing or not a string")
    return value


def _opt_str(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise Denied(Reason.MALFORMED, f"{name} is not a string")
    return value


def _num(claims: dict[str, Any], name: str) -> float:
    value = claims.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise Denied(Reason.MALFORMED, f"{name} missing or not a number")
    return value


def _opt_num(claims: dict[str, Any], name: str) -> float | None:
    return None if claims.get(name) is None else _num(claims, name)


def _audience(value: object) -> tuple[str, ...]:
    if isinstance(value, str) and value:
        return (value,)
    aud = _str_list(value, "aud")
    if not aud:
        raise Denied(Reason.MALFORMED, "aud missing")
    return aud


def _str_list(value: object, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Denied(Reason.MALFORMED, f"{name} is not a list of strings")
    return tuple(value)
