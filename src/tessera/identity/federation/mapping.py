"""The claim mapping of an upstream provider: a declarative, validated document (pydantic,
``extra="forbid"``) that turns the upstream's ID token and userinfo claims into Tessera's
one internal schema. A bad mapping is refused at ``tessera idps add`` with the line that
is wrong (``MappingError``). Reference: docs/federation.md."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any

import yaml  # type: ignore[import-untyped]
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from tessera.core.acr import ACR_MFA, ACR_PASSWORD, DEFAULT_ACR_LEVELS
from tessera.core.roles import PLATFORM_ADMIN, ROLES

__all__ = ["ClaimMapping", "MappingError", "Profile", "load_mapping", "normalise"]

RESERVED = frozenset({"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid", "sv", "tid",
                      "acr", "amr", "auth_time", "nonce", "azp", "at_hash", "scope",
                      "client_id", "cnf", "act", "email", "email_verified", "name",
                      "groups", "roles", "department"})


def _role(value: str) -> str:
    if value == PLATFORM_ADMIN:
        raise ValueError(f"{value!r}: an upstream of one tenant cannot grant a cross-tenant "
                         "role")
    if value not in ROLES:
        raise ValueError(f"unknown role {value!r} (known: "
                         f"{', '.join(sorted(ROLES - {PLATFORM_ADMIN}))})")
    return value


def _level(value: str) -> str:
    if value not in DEFAULT_ACR_LEVELS:
        raise ValueError(f"unknown level {value!r} (known: {', '.join(DEFAULT_ACR_LEVELS)})")
    return value


def _custom(value: str) -> str:
    if value in RESERVED:
        raise ValueError(f"custom claim {value!r} would replace a reserved claim")
    return value


ClaimName = Annotated[str, Field(min_length=1, max_length=100)]
RoleName = Annotated[str, AfterValidator(_role)]
AcrLevel = Annotated[str, AfterValidator(_level)]
CustomClaim = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_custom)]


class ClaimNames(BaseModel):
    """Which upstream claim holds each field of the internal schema."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    subject: str = Field("sub", min_length=1, max_length=100)
    """The stable user id at the upstream (never the e-mail: it can change hands)."""
    email: str | None = Field("email", min_length=1, max_length=100)
    email_verified: str | None = Field("email_verified", min_length=1, max_length=100)
    name: str | None = Field("name", min_length=1, max_length=100)
    groups: str | None = Field("groups", min_length=1, max_length=100)
    department: str | None = Field(None, min_length=1, max_length=100)
    custom: dict[CustomClaim, ClaimName] = {}
    """Tessera claim name → upstream claim name, copied as is (strings, numbers,
    booleans or lists of strings)."""


class Linking(BaseModel):
    """When an upstream login may attach to an existing local account. Nothing links
    silently: either the upstream says the e-mail is verified and its domain is listed
    here, or an administrator linked the account (``tessera idps link``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    verified_email_domains: list[str] = []


class ClaimMapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    claims: ClaimNames = ClaimNames()
    roles: dict[str, RoleName] = {}
    """Upstream group → Tessera role (``core.roles``). Roles not listed here are never
    granted by a login; roles granted by an earlier login that the groups no longer give
    are removed (the session version is bumped)."""
    acr: dict[str, AcrLevel] = {}
    """Upstream ``acr`` → Tessera ``acr`` (a known level)."""
    mfa_amr: list[str] = ["mfa", "otp", "hwk", "swk", "sms", "fpt", "face"]
    """Upstream ``amr`` values that count as a second factor when ``acr`` is not mapped."""
    step_up_acr: str | None = Field(None, min_length=1, max_length=200)
    """The upstream ``acr_values`` asked for when a route needs MFA that the upstream
    login did not give (re-authentication goes back to this provider)."""
    linking: Linking = Linking()
    home_realm_domains: list[str] = []
    """E-mail domains whose users go straight to this provider (home-realm discovery)."""

    @field_validator("home_realm_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        return [d.lower().lstrip("@") for d in value]


class MappingError(ValueError):
    """A mapping document is invalid; ``line`` is 1-based (None: not from a file)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line


def _node_line(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the YAML node at ``loc`` (the deepest one that exists)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if part == "[key]":
            return line
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    line = key.start_mark.line + 1
                    node = value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def load_mapping(text: str) -> ClaimMapping:
    """Parse and validate a mapping document (YAML or JSON); ``MappingError`` names the
    line of the first wrong field."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise MappingError(f"not valid YAML: {exc.problem}",
                           mark.line + 1 if mark is not None else None) from None
    except yaml.YAMLError as exc:
        raise MappingError(f"not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MappingError("the mapping must be a YAML mapping (key: value)", 1)
    try:
        return ClaimMapping.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        where = ".".join(str(p) for p in loc) or "(document)"
        raise MappingError(f"{where}: {first['msg']}", _node_line(root, loc)) from None


@dataclass(frozen=True, slots=True)
class Profile:
    """The normalised result of one upstream login."""

    subject: str
    email: str | None
    email_verified: bool
    name: str | None
    groups: tuple[str, ...]
    roles: frozenset[str]
    department: str | None
    custom: dict[str, Any]
    acr: str
    amr: tuple[str, ...]

    def claims(self) -> dict[str, Any]:
        """What Tessera's ID token and userinfo carry (docs/federation.md)."""
        out: dict[str, Any] = {}
        if self.email is not None:
            out["email"] = self.email
            out["email_verified"] = self.email_verified
        if self.name is not None:
            out["name"] = self.name
        if self.groups:
            out["groups"] = list(self.groups)
        if self.roles:
            out["roles"] = sorted(self.roles)
        if self.department is not None:
            out["department"] = self.department
        out.update(self.custom)
        return out

    def fingerprint(self) -> str:
        """A hash of what a verifier may rely on: a change bumps the session version."""
        return hashlib.sha256(json.dumps(self.claims(), sort_keys=True).encode()).hexdigest()


class ClaimError(ValueError):
    """The upstream's claims do not fit the mapping (malformed upstream response)."""


def _string(claims: dict[str, Any], name: str | None, *, limit: int = 320) -> str | None:
    if name is None or name not in claims or claims[name] is None:
        return None
    value = claims[name]
    if not isinstance(value, str) or len(value) > limit:
        raise ClaimError(f"claim {name!r} is not a string of at most {limit} characters")
    return value


def _custom_value(name: str, value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) and len(str(value)) <= 500:
        return value
    if isinstance(value, list) and len(value) <= 100 and all(
            isinstance(v, str) and len(v) <= 200 for v in value):
        return list(value)
    raise ClaimError(f"claim {name!r} is not a short string, number, boolean or list")


def normalise(mapping: ClaimMapping, claims: dict[str, Any]) -> Profile:
    """Upstream claims (ID token merged with userinfo) → the internal schema."""
    names = mapping.claims
    subject = _string(claims, names.subject, limit=255)
    if not subject:
        raise ClaimError(f"the subject claim {names.subject!r} is missing")
    verified_raw = claims.get(names.email_verified) if names.email_verified else None
    if verified_raw is not None and not isinstance(verified_raw, bool):
        raise ClaimError(f"claim {names.email_verified!r} is not a boolean")
    groups_raw = claims.get(names.groups) if names.groups else None
    if groups_raw is None:
        groups: tuple[str, ...] = ()
    elif isinstance(groups_raw, list) and len(groups_raw) <= 500 and all(
            isinstance(g, str) and len(g) <= 200 for g in groups_raw):
        groups = tuple(sorted(set(groups_raw)))
    else:
        raise ClaimError(f"claim {names.groups!r} is not a list of strings")
    custom = {target: _custom_value(source, claims[source])
              for target, source in names.custom.items() if claims.get(source) is not None}
    upstream_acr = claims.get("acr")
    upstream_amr = claims.get("amr") or []
    if not isinstance(upstream_amr, list) or not all(isinstance(a, str) for a in upstream_amr):
        raise ClaimError("claim 'amr' is not a list of strings")
    if isinstance(upstream_acr, str) and upstream_acr in mapping.acr:
        acr = mapping.acr[upstream_acr]
    elif set(upstream_amr) & set(mapping.mfa_amr):
        acr = ACR_MFA
    else:
        acr = ACR_PASSWORD
    amr = ("fed", *sorted(set(upstream_amr)))[:10]
    return Profile(
        subject=subject, email=_string(claims, names.email), email_verified=bool(verified_raw),
        name=_string(claims, names.name), groups=groups,
        roles=frozenset(mapping.roles[g] for g in groups if g in mapping.roles),
        department=_string(claims, names.department, limit=200), custom=custom,
        acr=acr, amr=tuple(amr))
