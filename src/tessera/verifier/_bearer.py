"""Bearer tokens in HTTP (RFC 6750): read the ``Authorization`` header, answer a refusal.

RFC 6750: https://www.rfc-editor.org/rfc/rfc6750
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

import orjson

from tessera.verifier._verify import MAX_TOKEN_LENGTH
from tessera.verifier.errors import Denied, MissingToken, Reason, StepUpRequired, label_of

__all__ = ["DenialResponse", "bearer_token", "denial_response"]

_B64TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
"""RFC 6750 §2.1 ``b64token``."""
_UNSAFE: Final = re.compile(r'["\\\x00-\x1f\x7f]')

DenialResponse = tuple[int, list[tuple[str, str]], bytes]
"""(status, headers, body) of a refusal; headers are lower-case names."""


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value (RFC 6750 §2.1).

    Raises ``MissingToken`` when there is no header or another scheme is used, and
    ``Denied(malformed)`` for a Bearer header that is not one ``b64token`` or is longer
    than ``MAX_TOKEN_LENGTH`` (before any parsing).
    """
    if authorization is None:
        raise MissingToken()
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise MissingToken()
    token = credentials.strip(" ")
    if len(token) > MAX_TOKEN_LENGTH:
        raise Denied(Reason.MALFORMED, "token too long")
    if not token or not _B64TOKEN.fullmatch(token):
        raise Denied(Reason.MALFORMED, "the Authorization header is not 'Bearer <token>'")
    return token


def denial_response(denied: Denied, *, scopes: Iterable[str] = (),
                    dpop_algs: str | None = None) -> DenialResponse:
    """RFC 6750 §3: status, ``WWW-Authenticate`` challenge and a JSON error body.

    The body has only ``error`` and ``error_description`` (never the token or the
    ``detail``); responses are ``no-store``. A missing token gets a challenge without an
    error code (§3.1); a 503 carries ``Retry-After`` instead of a challenge. A step-up
    refusal adds RFC 9470 §3 ``acr_values`` and ``max_age``::

        Bearer error="insufficient_user_authentication", error_description="...",
          acr_values="urn:tessera:acr:mfa", max_age="300"

    With ``dpop_algs`` (a DPoP presentation, or a refusal about DPoP) the challenge is
    RFC 9449 §7.1's ``DPoP error="...", ..., algs="ES256 ..."``; a ``use_dpop_nonce``
    refusal also sends its nonce in ``DPoP-Nonce`` (§9).
    """
    description = _UNSAFE.sub("", denied.description)
    headers = [("content-type", "application/json"), ("cache-control", "no-store")]
    if isinstance(denied, MissingToken):
        headers.append(("www-authenticate", "Bearer"))
    elif denied.status == 503:
        headers.append(("retry-after", "5"))
    else:
        scheme = "DPoP" if dpop_algs is not None else "Bearer"
        challenge = f'{scheme} error="{denied.error}", error_description="{description}"'
        wanted = " ".join(sorted(scopes))
        if label_of(denied) == Reason.INSUFFICIENT_SCOPE and wanted and not _UNSAFE.search(wanted):
            challenge += f', scope="{wanted}"'
        if isinstance(denied, StepUpRequired):
            challenge += "".join(f', {name}="{_UNSAFE.sub("", value)}"'
                                 for name, value in denied.challenge_params)
        if dpop_algs is not None:
            challenge += f', algs="{_UNSAFE.sub("", dpop_algs)}"'
        headers.append(("www-authenticate", challenge))
        nonce = getattr(denied, "nonce", None)
        if isinstance(nonce, str):
            headers.append(("dpop-nonce", nonce))
    body = orjson.dumps({"error": denied.error, "error_description": description})
    return denied.status, headers, body
