"""The login and logout pages: Jinja2 templates in ``identity/templates`` (autoescaped,
no outside resources), rendered to bytes for the protocol handlers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tessera.identity.views import render

__all__ = ["error_page", "logged_out_page", "login_page", "logout_page", "totp_page"]


def login_page(*, client_name: str, fields: Mapping[str, str], csrf: str,
               error: str | None = None, username: str = "",
               providers: Sequence[tuple[str, str]] = ()) -> bytes:
    """``providers``: (name, start URL) of the tenant's upstream providers, offered as
    "Continue with …" (docs/federation.md)."""
    return render("login.html", title="Sign in", client_name=client_name, fields=fields,
                  csrf=csrf, error=error, username=username, providers=list(providers))


def totp_page(*, client_name: str, fields: Mapping[str, str], csrf: str, pending: str,
              error: str | None = None) -> bytes:
    """The second login step: the code from the authenticator app."""
    return render("totp.html", title="Two-step verification", client_name=client_name,
                  fields=fields, csrf=csrf, pending=pending, error=error)


def logout_page(*, fields: Mapping[str, str], csrf: str) -> bytes:
    return render("logout.html", title="Sign out", fields=fields, csrf=csrf, error=None)


def logged_out_page() -> bytes:
    return render("notice.html", title="Signed out", heading="You are signed out",
                  message=None, link=None, error=None)


def error_page(message: str) -> bytes:
    return render("notice.html", title="Error",
                  heading="Something is wrong with this request", message=None, link=None,
                  error=message)
