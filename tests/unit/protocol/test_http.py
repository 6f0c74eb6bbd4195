"""Strict form parsing (RFC 6749 §3.1, §3.2, Appendix A) and error responses (§5.2,
RFC 6750 §3), framework-free."""

from __future__ import annotations

import pytest

from tessera.protocol.errors import InvalidClient, InvalidRequest, InvalidToken, OAuthError
from tessera.protocol.http import (
    FORM_CONTENT_TYPE,
    OAuthRequest,
    Params,
    error_response,
    has_control_chars,
    json_response,
    parse_params,
)

MAX_BODY = 16 * 1024


def post(body: bytes, *, ctype: str | None = FORM_CONTENT_TYPE, query: str = "",
         method: str = "POST") -> OAuthRequest:
    headers = {"content-type": ctype} if ctype is not None else {}
    return OAuthRequest(method=method, url="http://x/token", headers=headers, body=body,
                        query=query)


def refused(request: OAuthRequest, **kw: bool) -> str:
    with pytest.raises(InvalidRequest) as exc:
        parse_params(request, max_body=MAX_BODY, **kw)
    return exc.value.description


# --- Params ---------------------------------------------------------------------------

def test_params_single_valued_and_empty_is_absent() -> None:
    params = Params([("a", "1"), ("b", ""), ("b", "2"), ("c", "")])
    assert params.as_dict() == {"a": "1", "b": "2"}
    assert "c" not in params and params.get("c") is None
    assert params.require("a") == "1"
    with pytest.raises(InvalidRequest, match="missing parameter c"):
        params.require("c")


def test_params_repeated_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="parameter grant_type is repeated"):
        Params([("grant_type", "x"), ("grant_type", "x")])


def test_params_limits() -> None:
    Params([(f"p{i}", "v") for i in range(64)])
    with pytest.raises(InvalidRequest, match="too many"):
        Params([(f"p{i}", "v") for i in range(65)])
    Params([("v", "x" * 8192)])
    with pytest.raises(InvalidRequest, match="too long"):
        Params([("v", "x" * 8193)])
    with pytest.raises(InvalidRequest, match="too long"):
        Params([("n" * 8193, "x")])


@pytest.mark.parametrize("text", ["a\x00b", "a\nb", "a\rb", "\x1b[31m", "\x7f", "\x08"])
def test_control_characters_are_refused(text: str) -> None:
    assert has_control_chars(text)
    for pair in ((text, "v"), ("n", text)):
        with pytest.raises(InvalidRequest, match="control characters"):
            Params([pair])


@pytest.mark.parametrize("text", ["tab\there", "zo\u00eb", "\u65e5\u672c", "\U0001f512",
                                  "a b+c", "\u0085nel"])
def test_unicode_and_tab_are_allowed(text: str) -> None:
    """App. A: UNICODECHARNOCRLF allows TAB and everything from %x80 on."""
    assert not has_control_chars(text)
    assert Params([("username", text)]).get("username") == text


@pytest.mark.parametrize("name", ['a"b', "x\\y", "\u00fc", "n" * 41, "a b", "<script>"])
def test_error_descriptions_never_echo_odd_parameter_names(name: str) -> None:
    """RFC 6749 §5.2: error_description is printable ASCII without '"' or '\\'."""
    with pytest.raises(InvalidRequest) as exc:
        Params([(name, "1"), (name, "2")])
    assert exc.value.description == "a parameter is repeated"


# --- parse_params ---------------------------------------------------------------------

def test_parses_a_form_post() -> None:
    params = parse_params(post(b"grant_type=client_credentials&scope=a+b%20c"),
                          max_body=MAX_BODY)
    assert params.as_dict() == {"grant_type": "client_credentials", "scope": "a b c"}
    charset = post(b"a=1", ctype="Application/X-WWW-Form-Urlencoded; charset=UTF-8")
    assert parse_params(charset, max_body=MAX_BODY).get("a") == "1"


@pytest.mark.parametrize("ctype", [None, "", "application/json", "text/plain",
                                   "multipart/form-data; boundary=x",
                                   "application/x-www-form-urlencodedx"])
def test_content_type_must_be_a_form(ctype: str | None) -> None:
    assert "content type" in refused(post(b"a=1", ctype=ctype))


@pytest.mark.parametrize("body", [b"a=%ff", b"a=\xff", b"a=%c3%28", b"\xc3"])
def test_body_must_be_utf8(body: bytes) -> None:
    refused(post(body))


def test_body_size_is_limited() -> None:
    assert "too large" in refused(post(b"a=" + b"x" * MAX_BODY))


def test_only_post_unless_query_is_allowed() -> None:
    assert refused(post(b"", method="GET", query="a=1")) == "use POST"
    assert refused(post(b"", method="PUT")) == "use POST"
    params = parse_params(post(b"", method="GET", query="a=1&b=%C3%A9"), max_body=MAX_BODY,
                          allow_query=True)
    assert params.as_dict() == {"a": "1", "b": "\u00e9"}
    with pytest.raises(InvalidRequest):
        parse_params(post(b"", method="GET", query="a=%ff"), max_body=MAX_BODY,
                     allow_query=True)


@pytest.mark.parametrize("name", ["client_secret", "code", "code_verifier", "refresh_token",
                                  "password", "token", "access_token", "id_token",
                                  "client_assertion", "subject_token", "actor_token"])
def test_credentials_in_the_query_of_a_post_are_refused(name: str) -> None:
    """DESIGN §9: no tokens in URLs — even when the body is fine."""
    assert "URL" in refused(post(b"grant_type=x", query=f"{name}=secret"))


def test_harmless_query_on_a_post_is_ignored() -> None:
    params = parse_params(post(b"a=1", query="tenant=x"), max_body=MAX_BODY)
    assert params.as_dict() == {"a": "1"}


def test_over_64_fields_in_the_body_is_refused_before_parsing() -> None:
    body = "&".join(f"p{i}=1" for i in range(65)).encode()
    assert refused(post(body)) == "malformed parameters"


# --- responses ------------------------------------------------------------------------

def test_json_response_is_no_store_by_default() -> None:
    assert json_response({"a": 1}).headers == {"cache-control": "no-store",
                                               "pragma": "no-cache"}
    assert json_response({"a": 1}, no_store=False).headers == {}


@pytest.mark.parametrize(("error", "status", "challenge"), [
    (InvalidRequest("bad"), 400, None),
    (InvalidClient("nope", basic=True), 401, 'Basic realm="tessera"'),
    (InvalidClient("nope"), 401, 'Basic realm="tessera"'),
    (InvalidToken("expired"), 401, 'Bearer error="invalid_token", error_description="expired"'),
])
def test_error_response(error: OAuthError, status: int, challenge: str | None) -> None:
    response = error_response(error)
    assert response.status == status
    assert response.json == {"error": error.error, "error_description": error.description}
    assert response.headers["cache-control"] == "no-store"
    assert response.headers.get("www-authenticate") == challenge


def test_error_detail_is_never_sent() -> None:
    response = error_response(InvalidClient("client authentication failed",
                                            detail="bad secret for 'c_123'"))
    assert "c_123" not in str(response.json) and "c_123" not in str(response.headers)


@pytest.mark.parametrize("description", ['say "hi"', "back\\slash", "caf\u00e9", "a\r\nb"])
def test_bearer_challenge_stays_a_valid_quoted_string(description: str) -> None:
    """RFC 6750 §3: the header must not break (quotes, CRLF) or fail to encode."""
    challenge = error_response(InvalidToken(description)).headers["www-authenticate"]
    assert challenge.isascii() and "\r" not in challenge and "\n" not in challenge
    inner = challenge.split('error_description="', 1)[1]
    assert inner.endswith('"') and '"' not in inner[:-1] and "\\" not in inner


@pytest.mark.parametrize("raw", ["", "a", "a=", "=b", "a=b", "a=b&&c=d", "&", "&&a=1&",
                                 "a=b=c", "token=eyJ.x-y_z.sig&token_type_hint=access_token",
                                 "x=%41", "x=a+b", "a=%zz", "a=1;b=2", "k=\u00e9",
                                 "a+b%3D=c%26d&plain=x", "%=%", "a=%C3%A9+%2B", "%41",
                                 "resource=https%3A%2F%2Fapi.example%2Fx&scope=a+b&g=c"])
def test_the_pairwise_decoding_parses_as_parse_qsl(raw: str) -> None:
    """Pairs with nothing to decode are split directly, the others decoded one by one;
    the result is parse_qsl's."""
    from urllib.parse import parse_qsl

    from tessera.protocol.http import _parse_qs

    assert _parse_qs(raw) == parse_qsl(raw, keep_blank_values=True, max_num_fields=64,
                                       errors="strict")


def test_a_percent_escape_that_is_not_utf8_is_refused() -> None:
    from tessera.protocol.http import _parse_qs

    with pytest.raises(InvalidRequest, match="malformed parameters"):
        _parse_qs("ok=1&name=%C3%28")


def test_the_fast_path_refuses_too_many_fields_as_parse_qsl_does() -> None:
    from tessera.protocol.http import _parse_qs

    assert len(_parse_qs("&".join(["a=1"] * 64))) == 64
    with pytest.raises(InvalidRequest, match="malformed parameters"):
        _parse_qs("&".join(["a=1"] * 65))
