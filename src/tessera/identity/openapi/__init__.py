"""OpenAPI 3.1 description of the identity service's HTTP API, served at ``/openapi.json``.

OpenAPI Specification 3.1.0: https://spec.openapis.org/oas/v3.1.0

The document is assembled from *sections*, one module per area of the API, each a function
``paths(ctx) -> {path: path item}`` built with the helpers of ``components``:

    oauth       token, introspection, revocation, userinfo, discovery, JWKS
    browser     authorization endpoint + login/TOTP pages, logout
    account     the signed-in user's pages (password, TOTP management), consent
    operations  admin API, revocation feed, health, metrics, this document
    console     the admin console (only when mounted)
    signals     SSF transmitter and global token revocation (issue 12)

**Adding a route** to ``identity/app.py`` (or the console): describe it in the section of
its area, or add a module with a ``paths`` function to ``SECTIONS``. The document only
lists what the running configuration mounts (``DocumentContext``). ``undocumented`` and
``unrouted`` compare the document with the app's routes; ``tests/e2e/test_openapi.py``
fails on either, and schemathesis (``tests/e2e/test_openapi_fuzz.py``) checks that the
answers match the document.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from starlette.routing import BaseRoute, Mount, Route

from tessera.identity.openapi import (
    account,
    browser,
    console,
    device,
    federation,
    oauth,
    operations,
    signals,
)
from tessera.identity.openapi.components import SCHEMAS, SECURITY_SCHEMES, Json
from tessera.identity.openapi.context import DocumentContext
from tessera.identity.openapi.operations import OPENAPI_PATH

__all__ = ["OPENAPI_PATH", "SECTIONS", "DocumentContext", "build_document",
           "documented_operations", "route_operations", "undocumented", "unrouted"]

Section = Callable[[DocumentContext], dict[str, Json]]
SECTIONS: tuple[Section, ...] = (oauth.paths, browser.paths, account.paths, operations.paths,
                                 console.paths, device.paths, signals.paths,
                                 federation.paths)
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def build_document(ctx: DocumentContext) -> Json:
    """The whole document; a path described by two sections is a programming error."""
    paths: dict[str, Json] = {}
    for section in SECTIONS:
        for path, item in section(ctx).items():
            if path in paths:
                raise ValueError(f"{path} is described twice")
            paths[path] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tessera identity service", "version": "1",
                 "description": "OAuth 2.0 / OpenID Connect authorization server with "
                                "sessions, refresh families and pushed revocation. Errors "
                                "are RFC 6749 §5.2 JSON (`error`, `error_description`).",
                 "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
        "servers": [{"url": ctx.issuer}],
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": SCHEMAS, "securitySchemes": SECURITY_SCHEMES},
    }


def route_operations(routes: Iterable[BaseRoute], prefix: str = "") -> set[tuple[str, str]]:
    """``(path, method)`` for every route, mounts included; ``HEAD`` that Starlette adds
    to every ``GET`` is left out (it is the same operation without a body)."""
    found: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, Mount):
            found |= route_operations(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            methods = route.methods or {"GET", "HEAD"}
            for method in methods:
                if method == "HEAD" and "GET" in methods:
                    continue
                found.add((prefix + route.path, method.lower()))
    return found


def documented_operations(document: Json) -> set[tuple[str, str]]:
    paths: dict[str, Any] = document.get("paths", {})
    return {(path, method) for path, item in paths.items() for method in item
            if method in _METHODS}


def undocumented(routes: Iterable[BaseRoute], document: Json) -> set[tuple[str, str]]:
    """Routes the document does not describe."""
    return route_operations(routes) - documented_operations(document)


def unrouted(routes: Iterable[BaseRoute], document: Json) -> set[tuple[str, str]]:
    """Operations the document describes that no route serves."""
    return documented_operations(document) - route_operations(routes)
