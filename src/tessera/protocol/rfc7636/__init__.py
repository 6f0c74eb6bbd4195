"""Proof Key for Code Exchange (PKCE) — RFC 7636, https://www.rfc-editor.org/rfc/rfc7636

Only ``S256`` is accepted (RFC 9700 §2.1.1: ``plain`` offers no protection against a
leaked authorization request).
"""

from __future__ import annotations

import base64
import hashlib
import re

from tessera.core.secrets import constant_time_equal

__all__ = ["PkceError", "check_challenge", "s256_challenge", "verify_code_verifier"]

# §4.1: code-verifier = 43*128unreserved; §4.2: S256 challenge is 43 base64url chars.
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


class PkceError(ValueError):
    pass


def s256_challenge(verifier: str) -> str:
    """§4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check_challenge(challenge: str | None, method: str | None) -> None:
    """Validate an authorization request's PKCE parameters (§4.3)."""
    if challenge is None:
        if method is not None:
            raise PkceError("code_challenge_method without code_challenge")
        return
    if (method or "plain") != "S256":
        raise PkceError("only code_challenge_method=S256 is supported")
    if not _CHALLENGE.match(challenge):
        raise PkceError("malformed code_challenge")


def verify_code_verifier(verifier: str | None, challenge: str | None) -> None:
    """§4.6: the verifier must hash to the stored challenge. Raises ``PkceError``."""
    if challenge is None:
        if verifier is not None:
            raise PkceError("code_verifier sent but no challenge was registered")
        return
    if verifier is None:
        raise PkceError("code_verifier required")
    if not _VERIFIER.match(verifier):
        raise PkceError("malformed code_verifier")
    if not constant_time_equal(s256_challenge(verifier), challenge):
        raise PkceError("code_verifier does not match the challenge")
