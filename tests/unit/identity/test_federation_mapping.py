"""The claim mapping (issue 11, item 2): validation with the line of the wrong field, and
normalisation of upstream claims into the one internal schema (malformed claims are
refused, never stored)."""

from __future__ import annotations

import pytest

from tessera.core.acr import ACR_MFA, ACR_PASSWORD
from tessera.core.federation import profile_claims
from tessera.identity.federation.mapping import (
    ClaimError,
    ClaimMapping,
    MappingError,
    load_mapping,
    normalise,
)
from tessera.identity.federation.upstream import issuer_allowed

MAPPING = load_mapping("""\
claims:
  department: dept
  custom:
    employee_id: emp
roles:
  admins: tenant-admin
acr:
  gold: urn:tessera:acr:mfa
""")


def test_defaults_and_normalisation() -> None:
    profile = normalise(MAPPING, {"sub": "u1", "email": "a@x.example", "email_verified": True,
                                  "name": "A", "groups": ["b", "admins", "b"], "dept": "R&D",
                                  "emp": 7, "acr": "gold", "amr": ["pwd", "hwk"]})
    assert profile.subject == "u1" and profile.groups == ("admins", "b")
    assert profile.roles == frozenset({"tenant-admin"}) and profile.acr == ACR_MFA
    assert profile.amr == ("fed", "hwk", "pwd")
    assert profile.claims() == {"email": "a@x.example", "email_verified": True, "name": "A",
                                "groups": ["admins", "b"], "roles": ["tenant-admin"],
                                "department": "R&D", "employee_id": 7}
    assert profile.fingerprint() != normalise(MAPPING, {"sub": "u1"}).fingerprint()


def test_acr_from_amr_when_not_mapped() -> None:
    assert normalise(ClaimMapping(), {"sub": "u", "amr": ["otp"]}).acr == ACR_MFA
    assert normalise(ClaimMapping(), {"sub": "u", "amr": ["pwd"]}).acr == ACR_PASSWORD
    assert normalise(ClaimMapping(), {"sub": "u", "acr": "unknown"}).acr == ACR_PASSWORD


@pytest.mark.parametrize("claims", [
    {},                                           # no subject
    {"sub": 5},
    {"sub": "u", "email_verified": "yes"},
    {"sub": "u", "groups": "admins"},
    {"sub": "u", "groups": [1, 2]},
    {"sub": "u", "email": ["a@x"]},
    {"sub": "u", "amr": "pwd"},
    {"sub": "u", "emp": {"nested": "object"}},
    {"sub": "u" * 300},
])
def test_malformed_upstream_claims_are_refused(claims: dict[str, object]) -> None:
    with pytest.raises(ClaimError):
        normalise(MAPPING, claims)


def test_scopes_decide_which_claims_travel() -> None:
    profile = {"email": "a@x", "email_verified": True, "name": "A", "roles": ["support"]}
    assert profile_claims(profile, {"openid"}) == {}
    assert profile_claims(profile, {"openid", "email"}) == {"email": "a@x",
                                                            "email_verified": True}
    assert profile_claims(profile, {"profile"}) == {"name": "A", "roles": ["support"]}
    assert profile_claims(None, {"profile", "email"}) == {}


@pytest.mark.parametrize(("text", "line"), [
    ("claims:\n  name: n\n  nmae: x\n", 3),
    ("roles:\n  a: support\n  b: boss\n", 3),
    ("acr:\n\n  x: y\n", 3),
    ("unknown_key: 1\n", 1),
    ("- a\n- b\n", 1),
    ("mfa_amr: [otp, {a: b}]\n", 1),
])
def test_errors_name_the_line(text: str, line: int) -> None:
    with pytest.raises(MappingError) as caught:
        load_mapping(text)
    assert caught.value.line == line, str(caught.value)
    assert str(caught.value).startswith(f"line {line}: ")


def test_empty_document_is_the_default_mapping() -> None:
    assert load_mapping("") == ClaimMapping()


@pytest.mark.parametrize(("own", "upstream", "allowed"), [
    ("https://id.example", "https://login.example", True),
    ("https://id.example", "http://127.0.0.1:9000", False),   # own issuer not loopback http
    ("http://127.0.0.1:8000", "http://127.0.0.1:9000", True),
    ("http://localhost:8000", "http://[::1]:9000", True),
    ("http://127.0.0.1:8000", "http://login.example", False),
    ("http://127.0.0.1:8000", "https://login.example#frag", False),
])
def test_issuer_transport_rule(own: str, upstream: str, allowed: bool) -> None:
    assert issuer_allowed(own, upstream) is allowed
