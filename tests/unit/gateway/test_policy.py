"""Policy validation: every broken file is refused with a message naming the route index
and the field; good files load into rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tessera.gateway import PolicyError, load_policy, parse_policy
from tessera.gateway.policy import DEFAULT_ALLOW, MAX_POLICY_BYTES

from ._support import MFA, POLICY, PWD

GOOD = """\
acr_levels: [urn:tessera:acr:pwd, urn:tessera:acr:mfa]
routes:
  - match: {host: "*", path: /healthz}
    public: true
  - match: {host: api.example, path: "/orders/**", methods: [get, POST]}
    audience: https://api.example
    scopes: [orders:read]
    acr: urn:tessera:acr:mfa
    max_age: 900
    strict: true
    exchange_to: https://orders.internal
    exchange_scope: orders:read
"""


def test_a_good_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    policy = load_policy(path)
    assert policy.acr_levels.values == (PWD, MFA)
    assert policy.default == "deny"
    public, orders = policy.rules
    assert public.public and public.index == 0 and public.host.is_any
    assert orders.methods == frozenset({"GET", "POST"})
    assert orders.audience == "https://api.example"
    assert orders.scopes == frozenset({"orders:read"})
    assert (orders.acr, orders.max_age, orders.strict) == (MFA, 900, True)
    assert (orders.exchange_to, orders.exchange_scope) == ("https://orders.internal",
                                                          "orders:read")
    assert orders.label == "routes[1]"
    assert orders.description == "routes[1] GET,POST api.example/orders/**"
    assert policy.exchange_targets == frozenset({"https://orders.internal"})


def test_defaults_and_the_allow_authenticated_fallback() -> None:
    policy = parse_policy({"routes": [{"match": {"path": "/a"}}], "default": DEFAULT_ALLOW})
    (rule,) = policy.rules
    assert rule.methods is None and rule.strict is None and rule.audience is None
    assert rule.scopes == frozenset() and not rule.public
    fallback = policy.match("any.host", "DELETE", "/elsewhere")
    assert fallback is not None and fallback.index is None and fallback.label == "default"
    assert parse_policy({"routes": []}).match("h", "GET", "/") is None
    assert not rule.accept_stale
    (opted,) = parse_policy({"routes": [{"match": {"path": "/a"}, "accept_stale": True}]}).rules
    assert opted.accept_stale


def with_route(**route: Any) -> dict[str, Any]:
    return {"acr_levels": [PWD, MFA], "routes": [{"match": {"path": "/ok"}}, route]}


BROKEN: list[tuple[object, str]] = [
    (None, "the policy file is empty"),
    ([1, 2], "the policy must be a mapping, not a list"),
    ({}, "routes: is required"),
    ({"routes": "all"}, "routes: must be a list, not a string"),
    ({"routes": [], "default": "allow"}, "default: must be 'deny' or 'allow-authenticated'"),
    ({"routes": [], "rutes": []}, "rutes: unknown field (did you mean 'routes'?)"),
    ({"routes": [], "acr_levels": "mfa"}, "acr_levels: must be a list"),
    ({"routes": [], "acr_levels": [PWD, PWD]}, "acr_levels: lists 'urn:tessera:acr:pwd' more"),
    ({"routes": [], "acr_levels": [PWD, 3]}, "acr_levels[1]: must be a non-empty string"),
    ({"routes": ["/orders"]}, "routes[0]: a route must be a mapping, not a string"),
    (with_route(), "routes[1].match: is required"),
    (with_route(match="/x"), "routes[1].match: 'match' must be a mapping"),
    (with_route(match={}), "routes[1].match.path: is required"),
    (with_route(match={"path": 7}), "routes[1].match.path: must be a string, not a number"),
    (with_route(match={"path": "orders"}), "routes[1].match.path: 'orders' must start with '/'"),
    (with_route(match={"path": "/orders*"}), "routes[1].match.path: '/orders*': a wildcard "
                                             "must be a whole segment"),
    (with_route(match={"path": "/a/**/b"}), "routes[1].match.path: '/a/**/b': '**' may only"),
    (with_route(match={"path": "/a/../b"}), "routes[1].match.path: '/a/../b': '.' and '..'"),
    (with_route(match={"path": "/a//b"}), "routes[1].match.path: '/a//b': empty segment"),
    (with_route(match={"path": "/a?x=1"}), "routes[1].match.path: '/a?x=1' may not contain"),
    (with_route(match={"path": "/a", "verbs": ["GET"]}),
     "routes[1].match.verbs: unknown field; expected one of host, path, methods"),
    (with_route(match={"path": "/a", "host": "https://api.example"}),
     "routes[1].match.host: 'https://api.example' is not '*', a host name"),
    (with_route(match={"path": "/a", "host": "api.example:443"}), "routes[1].match.host:"),
    (with_route(match={"path": "/a", "methods": []}),
     "routes[1].match.methods: must be a non-empty list of HTTP methods"),
    (with_route(match={"path": "/a", "methods": ["GET", True]}),
     "routes[1].match.methods[1]: True is not an HTTP method"),
    (with_route(match={"path": "/a"}, scope=["x"]),
     "routes[1].scope: unknown field (did you mean 'scopes'?)"),
    (with_route(match={"path": "/a"}, scopes="orders:read"),
     "routes[1].scopes: must be a list of scopes, not a string"),
    (with_route(match={"path": "/a"}, scopes=["orders read"]),
     "routes[1].scopes[0]: 'orders read' may not contain spaces"),
    (with_route(match={"path": "/a"}, acr="urn:tessera:acr:hwk"),
     "routes[1].acr: 'urn:tessera:acr:hwk' is not one of acr_levels"),
    (with_route(match={"path": "/a"}, max_age=0), "routes[1].max_age: must be a positive"),
    (with_route(match={"path": "/a"}, max_age="600"), "routes[1].max_age: must be a positive"),
    (with_route(match={"path": "/a"}, max_age=True), "routes[1].max_age: must be a positive"),
    (with_route(match={"path": "/a"}, strict="yes"),
     "routes[1].strict: must be true or false, not 'yes'"),
    (with_route(match={"path": "/a"}, public=1), "routes[1].public: must be true or false"),
    (with_route(match={"path": "/a"}, public=True, scopes=["x"]),
     "routes[1].scopes: a public route needs no token"),
    (with_route(match={"path": "/a"}, audience=""), "routes[1].audience: must be a non-empty"),
    (with_route(match={"path": "/a"}, audience='a"b'), "routes[1].audience: 'a\"b' may not"),
    (with_route(match={"path": "/a"}, exchange_scope="x"),
     "routes[1].exchange_scope: needs exchange_to"),
    (with_route(match={"path": "/a"}, exchange_to="https://d", exchange_scope="a  b"),
     "routes[1].exchange_scope: '' is not a valid scope"),
    (with_route(match={"path": "/a"}, exchange_to=["https://d"]),
     "routes[1].exchange_to: must be a non-empty string, not a list"),
    (with_route(match={"path": "/a"}, accept_stale="yes"),
     "routes[1].accept_stale: must be true or false"),
    (with_route(match={"path": "/a"}, strict=True, accept_stale=True),
     "routes[1].accept_stale: a strict route cannot accept_stale"),
    (with_route(match={"path": "/a"}, public=True, accept_stale=True),
     "routes[1].accept_stale: a public route needs no token"),
]


@pytest.mark.parametrize(("document", "message"), BROKEN)
def test_broken_policies_are_refused_with_the_place_and_the_reason(
        document: object, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(document, source="policy.yaml")
    assert str(caught.value).startswith("policy.yaml: ")
    assert message in str(caught.value)


@pytest.mark.parametrize(("text", "message"), [
    ("routes:\n  - match: {path: /a\n    public: true\n",
     "policy.yaml: line 3, column 11: not valid YAML"),
    ("routes:\n  - match: {path: /a}\n    public: true\n    public: false\n",
     "policy.yaml: line 4, column 5: not valid YAML: duplicate key 'public'"),
    ("routes: []\nroutes: []\n", "duplicate key 'routes'"),
    ("", "policy.yaml: the policy file is empty"),
    ("routes: !!python/object:os.system {}\n", "not valid YAML"),
    ("- a\n- b\n", "policy.yaml: the policy must be a mapping, not a list"),
])
def test_broken_files_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert message.replace("policy.yaml", str(path)) in str(caught.value)


def test_unreadable_oversized_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy(tmp_path / "missing.yaml")
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy(tmp_path)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_POLICY_BYTES + 1))
    with pytest.raises(PolicyError, match="larger than"):
        load_policy(big)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"routes: [\xff\xfe]")
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy(binary)


def test_the_shared_test_policy_is_valid() -> None:
    assert len(parse_policy(POLICY).rules) == 5
