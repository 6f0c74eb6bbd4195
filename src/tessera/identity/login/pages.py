"""Server-rendered pages. Every value is HTML-escaped; no page loads outside resources."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

__all__ = ["error_page", "logged_out_page", "login_page", "logout_page", "totp_page"]

_STYLE = """
body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;display:flex;
min-height:100vh;align-items:center;justify-content:center}
main{background:#fff;padding:2rem 2.5rem;border-radius:10px;box-shadow:0 2px 12px #0002;
min-width:20rem;max-width:28rem}
h1{font-size:1.3rem;margin:0 0 1rem}label{display:block;margin:.8rem 0 .2rem}
input[type=text],input[type=password]{width:100%;padding:.5rem;box-sizing:border-box}
code{word-break:break-all;background:#f4f5f7;padding:.1rem .3rem;border-radius:4px}
button{margin-top:1.2rem;padding:.55rem 1.2rem;border:0;border-radius:6px;background:#2d5bd7;
color:#fff;font-size:1rem;cursor:pointer}.error{color:#b00020}.muted{color:#666}
"""


def _page(title: str, body: str) -> bytes:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    ).encode()


def _hidden(fields: Mapping[str, str]) -> str:
    return "".join(f"<input type=hidden name='{escape(k)}' value='{escape(v)}'>"
                   for k, v in fields.items())


def _providers(providers: Sequence[tuple[str, str]]) -> str:
    """"Continue with …" links, one per upstream provider of the client's tenant."""
    if not providers:
        return ""
    links = "".join(f"<p><a class=idp href='{escape(url)}'>Continue with {escape(name)}</a></p>"
                    for name, url in providers)
    return f"<div class=providers>{links}<p class=muted>or sign in with a password</p></div>"


def login_page(*, client_name: str, fields: Mapping[str, str], csrf: str,
               error: str | None = None, username: str = "",
               providers: Sequence[tuple[str, str]] = ()) -> bytes:
    err = f"<p class=error role=alert>{escape(error)}</p>" if error else ""
    err += _providers(providers)
    return _page("Sign in", (
        f"<h1>Sign in</h1><p class=muted>to continue to <b>{escape(client_name)}</b></p>{err}"
        "<form method=post action='authorize'>"
        f"{_hidden(fields)}<input type=hidden name='csrf_token' value='{escape(csrf)}'>"
        "<label for=username>Username</label>"
        f"<input id=username name=username type=text autocomplete=username required "
        f"value='{escape(username)}'>"
        "<label for=password>Password</label>"
        "<input id=password name=password type=password autocomplete=current-password "
        "required><button type=submit>Sign in</button></form>"
    ))


def _code_input(label: str) -> str:
    return (f"<label for=totp_code>{escape(label)}</label>"
            "<input id=totp_code name=totp_code type=text inputmode=numeric "
            "autocomplete=one-time-code maxlength=7 required autofocus>")


def totp_page(*, client_name: str, fields: Mapping[str, str], csrf: str, pending: str,
              error: str | None = None) -> bytes:
    """The second login step: the code from the authenticator app."""
    err = f"<p class=error role=alert>{escape(error)}</p>" if error else ""
    return _page("Two-step verification", (
        "<h1>Two-step verification</h1><p class=muted>Enter the code from your "
        f"authenticator app to continue to <b>{escape(client_name)}</b>.</p>{err}"
        "<form method=post action='authorize'>"
        f"{_hidden(fields)}<input type=hidden name='csrf_token' value='{escape(csrf)}'>"
        f"<input type=hidden name='pending' value='{escape(pending)}'>"
        f"{_code_input('Code')}<button type=submit>Verify</button></form>"
    ))


def logout_page(*, fields: Mapping[str, str], csrf: str) -> bytes:
    return _page("Sign out", (
        "<h1>Sign out?</h1><p>This ends your session everywhere it is used.</p>"
        f"<form method=post action='logout'>{_hidden(fields)}"
        f"<input type=hidden name='csrf_token' value='{escape(csrf)}'>"
        "<input type=hidden name=confirm value=yes><button type=submit>Sign out</button></form>"
    ))


def logged_out_page() -> bytes:
    return _page("Signed out", "<h1>You are signed out</h1>")


def error_page(message: str) -> bytes:
    return _page("Error", f"<h1>Something is wrong with this request</h1>"
                          f"<p class=error>{escape(message)}</p>")
