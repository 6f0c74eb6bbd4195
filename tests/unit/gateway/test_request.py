"""Reading the original request from nginx, Traefik and Envoy headers; normalising it;
reading the bearer token. Everything unusable is a ``BadRequest`` (or a refusal)."""

from __future__ import annotations

import pytest

from tessera.gateway.denials import MissingToken
from tessera.gateway.request import (
    BadRequest,
    OriginalRequest,
    bearer_token,
    ext_authz_request,
    forward_auth_request,
    normalize_host,
    normalize_method,
    normalize_path,
)
from tessera.verifier import Denied, Reason


@pytest.mark.parametrize(("uri", "path"), [
    ("/orders", "/orders"),
    ("/orders?id=1&x=%2F", "/orders"),
    ("/orders?next=/a/../b;c//d", "/orders"),   # the query is not the path
    ("/orders/", "/orders/"),
    ("/", "/"),
    ("/caf%C3%A9", "/café"),
    ("/a%20b", "/a b"),
    ("/a/.hidden", "/a/.hidden"),
    ("/a/b.json", "/a/b.json"),
    ("/a/%41", "/a/A"),
    ("http://api.example/orders?x", "/orders"),
    ("https://api.example", "/"),
])
def test_normalize_path(uri: str, path: str) -> None:
    assert normalize_path(uri) == path


@pytest.mark.parametrize("uri", [
    "", "orders", "*", "ftp://x/y", "/../admin", "/a/../../b", "/%2e%2e/admin",
    "/a%2Fb", "/a%2fb", "/a%5Cb", "/a\\b", "/%zz", "/a%", "/a%4", "/%C0%AF", "/%ff",
    "/a%00b", "/a%0d%0aX", "/a b", "/a\tb", "/café", "/a\x00", "/" + "a" * 9000,
])
def test_unusable_uris_are_bad_requests(uri: str) -> None:
    with pytest.raises(BadRequest):
        normalize_path(uri)


@pytest.mark.parametrize("uri", [
    # path parameters: Tomcat and Spring strip them and read "..;" as ".."
    "/orders/..;/admin", "/orders;x=1/7", "/orders/7;jsessionid=abc", "/admin;", "/;/admin",
    "/orders/%3b/admin", "/orders/..%3B/admin",
    # dot segments, raw or encoded, anywhere (nginx resolves them, Starlette does not)
    "/public/../admin", "/a/./b", "/a/b/..", "/a/b/.", "/.", "/..",
    "/public/%2e%2e/admin", "/public/%2E%2E/admin", "/public/.%2e/admin",
    "/public/%2e./admin", "/public/%2e/admin", "/a/b%2ejson",
    # empty segments (nginx merges them, others do not)
    "//admin", "/a//b", "/a///b", "//", "http://api.example//admin",
    # double encoding and encoded delimiters
    "/%252e%252e/admin", "/a%25", "/%252f", "/a%3fb", "/a%3Fb", "/a%23b",
    "/a%2fb", "/a%5cb",
    # raw fragment and backslash
    "/public#/../admin", "/orders#frag", "/a\\..\\admin",
    # Unicode that normalises to a dot or a slash; overlong UTF-8
    "/%EF%BC%8E%EF%BC%8E/admin", "/a%EF%BC%8Fb", "/%C0%AE%C0%AE/admin", "/%E2%80%A5/x",
    # white space or a dot at a segment's edge (Spring trimTokens, Windows, IIS)
    "/admin%20", "/%20admin", "/admin%20/x", "/admin%C2%A0", "/admin.", "/admin./x",
    "/a/...",
])
def test_paths_a_back_end_could_read_otherwise_are_refused(uri: str) -> None:
    with pytest.raises(BadRequest):
        normalize_path(uri)


@pytest.mark.parametrize(("value", "host"), [
    (None, ""), ("", ""), ("api.example", "api.example"), ("API.Example:8443", "api.example"),
    ("api.example.", "api.example"), ("a.example, b.example", "a.example"),
    ("[::1]:8080", "[::1]"), ("127.0.0.1", "127.0.0.1"), ("my_host.local", "my_host.local"),
])
def test_normalize_host(value: str | None, host: str) -> None:
    assert normalize_host(value) == host


@pytest.mark.parametrize("value", ["api example", "api.example:http", "a/b", "[::1",
                                   "api.example:123456", ":80", "ex\u00e4mple.com", "-a.b"])
def test_bad_hosts(value: str) -> None:
    with pytest.raises(BadRequest):
        normalize_host(value)


def test_methods() -> None:
    assert normalize_method("get") == "GET"
    assert normalize_method("PROPFIND") == "PROPFIND"
    for bad in ("", "G E T", "GET\r\n", "X" * 40, "GÉT"):
        with pytest.raises(BadRequest):
            normalize_method(bad)


def test_nginx_headers() -> None:
    request = forward_auth_request({"x-original-uri": ["/orders/1?x=1"],
                                    "x-original-method": ["POST"],
                                    "host": ["API.example:443"]}, method="GET")
    assert request == OriginalRequest("POST", "api.example", "/orders/1")


def test_nginx_may_send_x_forwarded_host_which_wins_over_host() -> None:
    request = forward_auth_request({"x-original-uri": ["/a"], "host": ["gateway:8080"],
                                    "x-forwarded-host": ["api.example"]}, method="GET")
    assert request.host == "api.example"


def test_traefik_headers() -> None:
    request = forward_auth_request({"x-forwarded-uri": ["/orders"],
                                    "x-forwarded-method": ["DELETE"],
                                    "x-forwarded-host": ["api.example"],
                                    "host": ["gateway:8080"]}, method="GET")
    assert request == OriginalRequest("DELETE", "api.example", "/orders")


def test_without_a_method_header_the_check_requests_method_is_used() -> None:
    request = forward_auth_request({"x-original-uri": ["/a"]}, method="put")
    assert request.method == "PUT" and request.host == ""


def test_a_forged_header_cannot_disagree_with_the_proxys_own() -> None:
    # Traefik forwards a client's X-Original-URI untouched next to its own X-Forwarded-Uri.
    with pytest.raises(BadRequest, match="disagree"):
        forward_auth_request({"x-original-uri": ["/public"], "x-forwarded-uri": ["/admin"]},
                             method="GET")
    with pytest.raises(BadRequest, match="disagree"):
        forward_auth_request({"x-original-uri": ["/a"],
                              "x-forwarded-method": ["GET"], "x-original-method": ["POST"]},
                             method="GET")
    with pytest.raises(BadRequest, match="disagree"):
        forward_auth_request({"x-original-uri": ["/a", "/b"]}, method="GET")
    same = forward_auth_request({"x-original-uri": ["/a?x"], "x-forwarded-uri": ["/a"]},
                                method="GET")
    assert same.path == "/a"


def test_the_original_uri_is_required() -> None:
    with pytest.raises(BadRequest, match="X-Original-URI"):
        forward_auth_request({"host": ["api.example"]}, method="GET")


def test_envoy_path_and_authority() -> None:
    request = ext_authz_request("/orders/%31?q", method="patch",
                                headers={"host": ["API.example"],
                                         "x-forwarded-host": ["evil.example"]})
    assert request == OriginalRequest("PATCH", "api.example", "/orders/1")


def test_bearer_token() -> None:
    assert bearer_token(["Bearer abc.def-ghi_jk~l+m/n=="]) == "abc.def-ghi_jk~l+m/n=="
    assert bearer_token(["bearer  abc "]) == "abc"
    for missing in ([], ["Basic dXNlcjpwdw=="], ["Token abc"], [""]):
        with pytest.raises(MissingToken):
            bearer_token(missing)
    for malformed in (["Bearer"], ["Bearer "], ["Bearer a b"], ["Bearer a\"b"],
                      ["Bearer a", "Bearer b"], ["Bearer " + "a" * 100_000],
                      ["Bearer " + "a" * 9000]):
        with pytest.raises(Denied) as caught:
            bearer_token(malformed)
        assert caught.value.reason is Reason.MALFORMED
        assert not isinstance(caught.value, MissingToken)
