"""The route policy file: load, validate, match. First matching route wins.

.. code-block:: yaml

    acr_levels: [urn:tessera:acr:pwd, urn:tessera:acr:mfa]   # ordered, weakest first
    default: deny                     # or allow-authenticated; unmatched requests
    routes:
      - match: {host: "*", path: /healthz}
        public: true                  # no token needed (nothing else may be set)
      - match: {host: api.example, path: "/orders/**", methods: [GET]}
        audience: https://api.example # the token's aud must contain it
        scopes: [orders:read]         # every one must be granted
        acr: urn:tessera:acr:mfa      # at least this level (RFC 9470 step-up otherwise)
        max_age: 900                  # seconds since auth_time (RFC 9470 max_age)
        strict: true                  # fresh revocation state, else deny (or introspect)
        # accept_stale: true          # (not with strict) accept past the staleness bound,
                                      # logged and counted as stale_accepted
        exchange_to: https://orders.internal   # RFC 8693 token for the upstream
        exchange_scope: orders:read   # scope of that token (default: what the client may get)

Every field but ``match.path`` is optional. ``audience`` defaults to the gateway's
``TESSERA_VERIFIER_AUDIENCE``; ``strict`` to ``TESSERA_VERIFIER_STRICT_BY_DEFAULT``;
``accept_stale`` to false (every route refuses past ``TESSERA_VERIFIER_MAX_STALENESS``,
strict ones past ``TESSERA_VERIFIER_STRICT_MAX_STALENESS``, docs/freshness.md);
``methods`` to all; ``host`` to ``*``. With ``default: deny`` (the default) a request no
route matches is refused with 403; ``allow-authenticated`` lets any valid token for the
gateway's audience through (no scopes, no exchange).

Every error is a ``PolicyError`` whose message names the file, the route index and the
field (``policy.yaml: routes[2].acr: 'urn:x' is not one of acr_levels``). YAML syntax
errors name the line and column; duplicate keys are errors, not silently overwritten.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml  # type: ignore[import-untyped]
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from tessera.gateway.patterns import HostPattern, PathPattern

__all__ = ["DEFAULT_ALLOW", "DEFAULT_DENY", "AcrLevels", "Policy", "PolicyError", "Rule",
           "load_policy", "parse_policy"]

DEFAULT_DENY: Final = "deny"
DEFAULT_ALLOW: Final = "allow-authenticated"
MAX_POLICY_BYTES: Final = 1024 * 1024

_TOKEN_KEYS: Final = ("audience", "scopes", "acr", "max_age", "strict", "accept_stale",
                      "exchange_to", "exchange_scope")
# RFC 6749 §3.3 scope-token; acr values and audiences are held to the same (they are sent
# in quoted-string challenge parameters and form fields).
_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_METHOD: Final = re.compile(r"[A-Z][A-Z0-9_\-]{0,31}")


class PolicyError(ValueError):
    """The policy file cannot be used; the message names where and why."""


class AcrLevels:
    """Authentication context classes, weakest first; ``satisfies`` compares ranks."""

    __slots__ = ("_rank", "values")

    def __init__(self, values: Iterable[str] = ()) -> None:
        self.values = tuple(values)
        self._rank = {value: rank for rank, value in enumerate(self.values)}

    def __contains__(self, acr: object) -> bool:
        return acr in self._rank

    def satisfies(self, acr: str | None, required: str) -> bool:
        """``acr`` is ``required`` or stronger; an unknown or missing ``acr`` is not."""
        have = self._rank.get(acr) if acr is not None else None
        return have is not None and have >= self._rank[required]


@dataclass(frozen=True, slots=True)
class Rule:
    """One route: what it matches and what a request on it needs."""

    index: int | None
    """Position in ``routes`` (``None``: the ``allow-authenticated`` default)."""
    host: HostPattern = field(default_factory=lambda: HostPattern.parse("*"))
    path: PathPattern | None = None
    """``None`` only for the default rule (matches everything)."""
    methods: frozenset[str] | None = None
    public: bool = False
    audience: str | None = None
    scopes: frozenset[str] = frozenset()
    acr: str | None = None
    max_age: int | None = None
    strict: bool | None = None
    accept_stale: bool = False
    """Opt-in: accept past the staleness bound (never on a strict route)."""
    exchange_to: str | None = None
    exchange_scope: str | None = None

    @property
    def label(self) -> str:
        """The deciding rule as decision events and metrics name it: ``routes[2]``."""
        return "default" if self.index is None else f"routes[{self.index}]"

    @property
    def description(self) -> str:
        """``routes[2] GET,POST api.example/orders/*`` (for logs and ``--check``)."""
        if self.path is None:
            return f"{self.label} (any request)"
        methods = ",".join(sorted(self.methods)) if self.methods else "*"
        host = "" if self.host.is_any else self.host.source
        return f"{self.label} {methods} {host}{self.path.source}"

    def matches(self, host: str, method: str, path: str) -> bool:
        return ((self.methods is None or method in self.methods)
                and (self.path is None or self.path.matches(path))
                and self.host.matches(host))


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...]
    acr_levels: AcrLevels = field(default_factory=AcrLevels)
    default: Literal["deny", "allow-authenticated"] = DEFAULT_DENY
    source: str = "<policy>"
    _fallback: Rule | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fallback = Rule(None) if self.default == DEFAULT_ALLOW else None
        object.__setattr__(self, "_fallback", fallback)

    def match(self, host: str, method: str, path: str) -> Rule | None:
        """The first route matching the (normalised) request, the default rule under
        ``allow-authenticated``, else ``None`` (deny)."""
        for rule in self.rules:
            if rule.matches(host, method, path):
                return rule
        return self._fallback

    @property
    def exchange_targets(self) -> frozenset[str]:
        return frozenset(r.exchange_to for r in self.rules if r.exchange_to)


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file (``PolicyError`` on any problem)."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise PolicyError(f"{name}: cannot read the policy file: {exc.strerror or exc}") \
            from None
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(f"{name}: the policy file is larger than {MAX_POLICY_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(f"{name}: the policy file is not UTF-8") from None
    return parse_policy(_load_yaml(text, name), source=name)


def parse_policy(document: object, *, source: str = "<policy>") -> Policy:
    """Validate an already parsed document (what ``yaml.safe_load`` returns)."""
    if document is None:
        raise PolicyError(f"{source}: the policy file is empty (it needs a 'routes' list)")
    if not isinstance(document, dict):
        raise PolicyError(f"{source}: the policy must be a mapping, not {_kind(document)}")
    try:
        model = _PolicyModel.model_validate(document)
    except ValidationError as exc:
        raise PolicyError(f"{source}: {_explain(exc)}") from None
    return model.to_policy(source)


# -- the document's shape, as pydantic models ---------------------------------------
# Strict types (no "yes" for true, no "600" for 600) and ``extra="forbid"`` (a typo is
# an error, not a silently ignored rule). Patterns parse in field validators, so their
# own messages (``PatternError``) name the problem.

def _checked_token(value: str) -> str:
    if not value:
        raise ValueError("must be a non-empty string, not a string")
    if not _SCOPE_TOKEN.fullmatch(value):
        raise ValueError(f"{value!r} may not contain spaces, quotes, backslashes "
                         "or control characters")
    return value


Token = Annotated[StrictStr, AfterValidator(_checked_token)]


def _checked_method(value: object) -> str:
    if not isinstance(value, str) or not _METHOD.fullmatch(value.upper()):
        raise ValueError(f"{value!r} is not an HTTP method")
    return value.upper()


def _checked_scope_string(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a space-separated scope string")
    for scope in value.split(" "):
        if not _SCOPE_TOKEN.fullmatch(scope):
            raise ValueError(f"{scope!r} is not a valid scope (single spaces, "
                             "no quotes or backslashes)")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _MatchModel(_Model):
    host: StrictStr = "*"
    path: StrictStr
    methods: list[Annotated[object, AfterValidator(_checked_method)]] | StrictStr | None = None

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        HostPattern.parse(value)
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        PathPattern.parse(value)
        return value

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[object] | str | None) -> list[object] | str | None:
        if isinstance(value, str):
            return [_checked_method(value)]
        if value is not None and not value:
            raise ValueError("must be a non-empty list of HTTP methods")
        return value


class _RouteModel(_Model):
    match: _MatchModel
    public: StrictBool = False
    audience: Token | None = None
    scopes: list[Token] = Field(default_factory=list)
    acr: Token | None = None
    max_age: Annotated[StrictInt, Field(gt=0)] | None = None
    strict: StrictBool | None = None
    accept_stale: StrictBool = False
    exchange_to: Token | None = None
    exchange_scope: Annotated[StrictStr, AfterValidator(_checked_scope_string)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> _RouteModel:
        if self.public:
            given = [k for k in _TOKEN_KEYS if k in self.model_fields_set]
            if given:
                raise _FieldError(given[0], "a public route needs no token, so it takes no "
                                  "token rules")
        if self.accept_stale and self.strict is True:
            raise _FieldError("accept_stale", "a strict route cannot accept_stale")
        if self.exchange_scope is not None and self.exchange_to is None:
            raise _FieldError("exchange_scope", "needs exchange_to")
        return self


class _PolicyModel(_Model):
    acr_levels: list[Token] = Field(default_factory=list)
    default: Literal["deny", "allow-authenticated"] = DEFAULT_DENY
    routes: list[_RouteModel]

    @field_validator("acr_levels")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        duplicates = sorted({v for v in value if value.count(v) > 1})
        if duplicates:
            raise ValueError(f"lists {duplicates[0]!r} more than once")
        return value

    @model_validator(mode="after")
    def _known_acr(self) -> _PolicyModel:
        for index, route in enumerate(self.routes):
            if route.acr is not None and route.acr not in self.acr_levels:
                raise _FieldError(f"routes[{index}].acr", f"{route.acr!r} is not one of "
                                  f"acr_levels {self.acr_levels!r}")
        return self

    def to_policy(self, source: str) -> Policy:
        rules = tuple(
            Rule(index=index, host=HostPattern.parse(route.match.host),
                 path=PathPattern.parse(route.match.path),
                 methods=(None if route.match.methods is None
                          else frozenset(str(m) for m in route.match.methods)),
                 public=route.public, audience=route.audience,
                 scopes=frozenset(route.scopes), acr=route.acr, max_age=route.max_age,
                 strict=route.strict, accept_stale=route.accept_stale,
                 exchange_to=route.exchange_to, exchange_scope=route.exchange_scope)
            for index, route in enumerate(self.routes))
        return Policy(rules, AcrLevels(self.acr_levels), self.default, source)


class _FieldError(ValueError):
    """A rule across fields; ``field`` is the place relative to the model that raised it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# -- pydantic's first error, in the policy file's words -------------------------------

_WHAT: Final = {"match": "'match'", "routes": "a route"}
_PLAIN: Final = {
    "bool_type": "must be true or false, not {input!r}",
    "int_type": "must be a positive number of seconds, not {input!r}",
    "greater_than": "must be a positive number of seconds, not {input!r}",
    "literal_error": f"must be {DEFAULT_DENY!r} or {DEFAULT_ALLOW!r}, not {{input!r}}",
}


def _explain(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    loc = [part for part in error["loc"] if not _is_union_branch(part)]
    kind, value = error["type"], error.get("input")
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, _FieldError):
        loc = [*loc, *_split(cause.field)]
        return f"{_place(loc)}: {cause}"
    place = _place(loc)
    last = loc[-1] if loc else ""
    if kind == "invalid_key":
        return f"{value!r}: unknown field; field names are strings"
    if kind == "missing":
        hint = {"match": " (with at least a 'path')", "routes": " (a list of routes)",
                "path": " ('/exact', '/prefix/*' or '/prefix/**')"}.get(str(last), "")
        return f"{place}: is required{hint}"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc)
        close = difflib.get_close_matches(str(last), allowed, n=1)
        suggestion = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{place}: unknown field{suggestion}; expected one of {', '.join(allowed)}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        parent = loc[-2] if len(loc) > 1 and isinstance(last, int) else last
        what = _WHAT.get(str(parent), "it")
        return f"{place}: {what} must be a mapping, not {_kind(value)}"
    if kind == "list_type":
        noun = {"scopes": "a list of scopes", "acr_levels": "a list (weakest first)",
                "methods": "a non-empty list of HTTP methods"}.get(str(last), "a list")
        return f"{place}: must be {noun}, not {_kind(value)}"
    if kind == "string_type":
        if last in ("host", "path"):
            return f"{place}: must be a string, not {_kind(value)}"
        if last == "exchange_scope":
            return f"{place}: must be a space-separated scope string"
        return f"{place}: must be a non-empty string, not {_kind(value)}"
    if kind in _PLAIN:
        return f"{place}: {_PLAIN[kind].format(input=value)}"
    message = str(cause) if cause is not None else error["msg"]
    return f"{place}: {message}"


def _is_union_branch(part: object) -> bool:
    # pydantic names the branch of a union it tried ("list[...]", "str", "function-after")
    return isinstance(part, str) and ("[" in part or part in {"str", "function-after"})


def _split(field: str) -> list[str | int]:
    parts: list[str | int] = []
    for piece in field.split("."):
        name, _, index = piece.partition("[")
        parts.append(name)
        if index:
            parts.append(int(index.rstrip("]")))
    return parts


def _place(loc: list[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _allowed_keys(loc: list[str | int]) -> list[str]:
    names = [part for part in loc[:-1] if isinstance(part, str)]
    model: type[BaseModel] = _PolicyModel
    if names[-1:] == ["match"]:
        model = _MatchModel
    elif names[-1:] == ["routes"]:
        model = _RouteModel
    return list(model.model_fields)


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


class _StrictLoader(yaml.SafeLoader):  # type: ignore[misc]
    """``SafeLoader`` that refuses duplicate keys (PyYAML keeps the last one silently)."""


def _construct_mapping(loader: _StrictLoader, node: Any, deep: bool = False) -> Any:
    seen: set[str | int] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, str | int):
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                              _construct_mapping)


def _load_yaml(text: str, name: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise PolicyError(f"{name}: {where}not valid YAML: {problem}") from None
