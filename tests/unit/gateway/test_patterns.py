"""Route matching: path and host patterns, methods, first match wins, default rule."""

from __future__ import annotations

import pytest

from tessera.gateway import parse_policy
from tessera.gateway.patterns import HostPattern, PathPattern


@pytest.mark.parametrize(("pattern", "path", "expected"), [
    ("/orders", "/orders", True),
    ("/orders", "/orders/", False),
    ("/orders", "/orders/1", False),
    ("/orders", "/Orders", False),
    ("/orders/", "/orders/", True),
    ("/", "/", True),
    ("/", "/a", False),
    ("/orders/*", "/orders/1", True),
    ("/orders/*", "/orders", False),
    ("/orders/*", "/orders/", False),
    ("/orders/*", "/orders/1/items", False),
    ("/orders/**", "/orders", True),
    ("/orders/**", "/orders/", True),
    ("/orders/**", "/orders/1/items/2", True),
    ("/orders/**", "/ordersX", False),
    ("/orders/**", "/order", False),
    ("/**", "/", True),
    ("/**", "/anything/at/all", True),
    ("/tenants/*/orders", "/tenants/t1/orders", True),
    ("/tenants/*/orders", "/tenants//orders", False),
    ("/tenants/*/orders", "/tenants/t1/bills", False),
    ("/tenants/*/orders/**", "/tenants/t1/orders/9", True),
    ("/café", "/café", True),
])
def test_path_patterns(pattern: str, path: str, expected: bool) -> None:
    assert PathPattern.parse(pattern).matches(path) is expected


@pytest.mark.parametrize(("pattern", "host", "expected"), [
    ("*", "api.example", True),
    ("*", "", True),
    ("api.example", "api.example", True),
    ("API.Example", "api.example", True),
    ("api.example.", "api.example", True),
    ("api.example", "www.api.example", False),
    ("api.example", "", False),
    ("*.example.com", "api.example.com", True),
    ("*.example.com", "a.b.example.com", True),
    ("*.example.com", "example.com", False),
    ("*.example.com", "badexample.com", False),
    ("[::1]", "[::1]", True),
])
def test_host_patterns(pattern: str, host: str, expected: bool) -> None:
    assert HostPattern.parse(pattern).matches(host) is expected


def test_first_match_wins_and_methods_filter() -> None:
    policy = parse_policy({"routes": [
        {"match": {"path": "/orders/**", "methods": ["GET"]}, "scopes": ["read"]},
        {"match": {"path": "/orders/**", "methods": ["POST", "PUT"]}, "scopes": ["write"]},
        {"match": {"path": "/orders/*"}, "scopes": ["never"]},
        {"match": {"host": "admin.example", "path": "/**"}, "strict": True},
    ]})
    get = policy.match("api.example", "GET", "/orders/1")
    post = policy.match("api.example", "POST", "/orders/1")
    delete = policy.match("api.example", "DELETE", "/orders/1")
    assert get is not None and get.index == 0
    assert post is not None and post.index == 1
    assert delete is not None and delete.index == 2
    admin = policy.match("admin.example", "GET", "/x")
    assert admin is not None and admin.index == 3
    assert policy.match("api.example", "GET", "/x") is None
