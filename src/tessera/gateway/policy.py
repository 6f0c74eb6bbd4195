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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import yaml  # type: ignore[import-untyped]

from tessera.gateway.patterns import HostPattern, PathPattern, PatternError

__all__ = ["DEFAULT_ALLOW", "DEFAULT_DENY", "AcrLevels", "Policy", "PolicyError", "Rule",
           "load_policy", "parse_policy"]

DEFAULT_DENY: Final = "deny"
DEFAULT_ALLOW: Final = "allow-authenticated"
MAX_POLICY_BYTES: Final = 1024 * 1024

_TOP_KEYS: Final = ("acr_levels", "default", "routes")
_ROUTE_KEYS: Final = ("match", "public", "audience", "scopes", "acr", "max_age", "strict",
                      "accept_stale", "exchange_to", "exchange_scope")
_MATCH_KEYS: Final = ("host", "path", "methods")
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
    return _Validator(source).policy(document)


class _Validator:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> PolicyError:
        return PolicyError(f"{self.source}: {where}: {message}" if where
                           else f"{self.source}: {message}")

    def policy(self, document: object) -> Policy:
        if document is None:
            raise self.fail("", "the policy file is empty (it needs a 'routes' list)")
        top = self.mapping(document, "", _TOP_KEYS, what="the policy")
        levels = self.acr_levels(top.get("acr_levels"))
        default = top.get("default", DEFAULT_DENY)
        if default not in (DEFAULT_DENY, DEFAULT_ALLOW):
            raise self.fail("default", f"must be {DEFAULT_DENY!r} or {DEFAULT_ALLOW!r}, "
                            f"not {default!r}")
        if "routes" not in top:
            raise self.fail("routes", "is required (a list of routes)")
        routes = top["routes"]
        if not isinstance(routes, list):
            raise self.fail("routes", f"must be a list, not {_kind(routes)}")
        rules = tuple(self.rule(i, r, levels) for i, r in enumerate(routes))
        return Policy(rules, levels, default, self.source)

    def acr_levels(self, value: object) -> AcrLevels:
        if value is None:
            return AcrLevels()
        if not isinstance(value, list):
            raise self.fail("acr_levels", f"must be a list (weakest first), not {_kind(value)}")
        for i, level in enumerate(value):
            self.token(level, f"acr_levels[{i}]")
        duplicates = sorted({v for v in value if value.count(v) > 1})
        if duplicates:
            raise self.fail("acr_levels", f"lists {duplicates[0]!r} more than once")
        return AcrLevels(value)

    def rule(self, index: int, value: object, levels: AcrLevels) -> Rule:
        where = f"routes[{index}]"
        route = self.mapping(value, where, _ROUTE_KEYS, what="a route")
        if "match" not in route:
            raise self.fail(f"{where}.match", "is required (with at least a 'path')")
        match = self.mapping(route["match"], f"{where}.match", _MATCH_KEYS, what="'match'")
        public = self.boolean(route.get("public", False), f"{where}.public")
        if public:
            given = [k for k in _TOKEN_KEYS if k in route]
            if given:
                raise self.fail(f"{where}.{given[0]}",
                                "a public route needs no token, so it takes no token rules")
        acr = route.get("acr")
        if acr is not None:
            self.token(acr, f"{where}.acr")
            if acr not in levels:
                raise self.fail(f"{where}.acr",
                                f"{acr!r} is not one of acr_levels {list(levels.values)!r}")
        strict = route.get("strict")
        accept_stale = self.boolean(route.get("accept_stale", False), f"{where}.accept_stale")
        if accept_stale and strict is True:
            raise self.fail(f"{where}.accept_stale", "a strict route cannot accept_stale")
        exchange_scope = route.get("exchange_scope")
        if exchange_scope is not None:
            self.scope_string(exchange_scope, f"{where}.exchange_scope")
            if "exchange_to" not in route:
                raise self.fail(f"{where}.exchange_scope", "needs exchange_to")
        return Rule(
            index=index,
            host=self.host(match.get("host", "*"), f"{where}.match.host"),
            path=self.path(match.get("path"), f"{where}.match.path"),
            methods=self.methods(match.get("methods"), f"{where}.match.methods"),
            public=public,
            audience=self.optional_token(route.get("audience"), f"{where}.audience"),
            scopes=self.scopes(route.get("scopes"), f"{where}.scopes"),
            acr=acr,
            max_age=self.max_age(route.get("max_age"), f"{where}.max_age"),
            strict=None if strict is None else self.boolean(strict, f"{where}.strict"),
            accept_stale=accept_stale,
            exchange_to=self.optional_token(route.get("exchange_to"), f"{where}.exchange_to"),
            exchange_scope=exchange_scope)

    # -- fields --------------------------------------------------------------------

    def mapping(self, value: object, where: str, allowed: tuple[str, ...], *,
                what: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"{what} must be a mapping, not {_kind(value)}")
        for key in value:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                place = f"{where}.{key}" if where else str(key)
                raise self.fail(place, f"unknown field{suggestion}; expected one of "
                                f"{', '.join(allowed)}")
        return value

    def host(self, value: object, where: str) -> HostPattern:
        if not isinstance(value, str):
            raise self.fail(where, f"must be a string, not {_kind(value)}")
        try:
            return HostPattern.parse(value)
        except PatternError as exc:
            raise self.fail(where, str(exc)) from None

    def path(self, value: object, where: str) -> PathPattern:
        if value is None:
            raise self.fail(where, "is required ('/exact', '/prefix/*' or '/prefix/**')")
        if not isinstance(value, str):
            raise self.fail(where, f"must be a string, not {_kind(value)}")
        try:
            return PathPattern.parse(value)
        except PatternError as exc:
            raise self.fail(where, str(exc)) from None

    def methods(self, value: object, where: str) -> frozenset[str] | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.fail(where, "must be a non-empty list of HTTP methods")
        methods = []
        for i, method in enumerate(value):
            if not isinstance(method, str) or not _METHOD.fullmatch(method.upper()):
                raise self.fail(f"{where}[{i}]", f"{method!r} is not an HTTP method")
            methods.append(method.upper())
        return frozenset(methods)

    def scopes(self, value: object, where: str) -> frozenset[str]:
        if value is None:
            return frozenset()
        if not isinstance(value, list):
            raise self.fail(where, f"must be a list of scopes, not {_kind(value)}")
        for i, scope in enumerate(value):
            self.token(scope, f"{where}[{i}]")
        return frozenset(value)

    def scope_string(self, value: object, where: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, "must be a space-separated scope string")
        for scope in value.split(" "):
            if not _SCOPE_TOKEN.fullmatch(scope):
                raise self.fail(where, f"{scope!r} is not a valid scope (single spaces, "
                                "no quotes or backslashes)")

    def max_age(self, value: object, where: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(where, f"must be a positive number of seconds, not {value!r}")
        return value

    def boolean(self, value: object, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"must be true or false, not {value!r}")
        return value

    def optional_token(self, value: object, where: str) -> str | None:
        if value is None:
            return None
        self.token(value, where)
        assert isinstance(value, str)
        return value

    def token(self, value: object, where: str) -> None:
        if not isinstance(value, str) or not value:
            raise self.fail(where, f"must be a non-empty string, not {_kind(value)}")
        if not _SCOPE_TOKEN.fullmatch(value):
            raise self.fail(where, f"{value!r} may not contain spaces, quotes, backslashes "
                            "or control characters")


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
