"""RFC 7636 Appendix B example and the S256-only rule."""

from __future__ import annotations

import pytest

from tessera.protocol.rfc7636 import (
    PkceError,
    check_challenge,
    s256_challenge,
    verify_code_verifier,
)

# RFC 7636 Appendix B
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_rfc7636_appendix_b_vector() -> None:
    assert s256_challenge(VERIFIER) == CHALLENGE
    verify_code_verifier(VERIFIER, CHALLENGE)


def test_plain_and_malformed_challenges_are_refused() -> None:
    check_challenge(CHALLENGE, "S256")
    for challenge, method in ((CHALLENGE, "plain"), (CHALLENGE, None), ("short", "S256"),
                              (None, "S256")):
        with pytest.raises(PkceError):
            check_challenge(challenge, method)


def test_verifier_must_match_and_be_well_formed() -> None:
    with pytest.raises(PkceError):
        verify_code_verifier(None, CHALLENGE)
    with pytest.raises(PkceError):
        verify_code_verifier("x" * 42, CHALLENGE)
    with pytest.raises(PkceError):
        verify_code_verifier(VERIFIER[:-1] + "l", CHALLENGE)
    with pytest.raises(PkceError):
        verify_code_verifier(VERIFIER, None)
    verify_code_verifier(None, None)
