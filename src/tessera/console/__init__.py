"""Admin web console: server-rendered pages on the identity service (docs/console.md).

Sessions per user and tenant (device, clients, created, last refresh, acr), revocation
of a session, a refresh family, a user or a tenant with a confirmation step, the audit
timeline with filters, and the journey of a token or request across services. Behind an
administrator's browser session with step-up (``console.required_acr``,
``console.max_auth_age``); CSRF tokens on every state-changing form.

``console_routes(identity)`` returns the routes ``identity.app`` mounts at ``/console``.
"""

from __future__ import annotations

from tessera import _extras

_extras.require("server", "the admin console")  # one clear line without the extra
# ruff: noqa: E402 (the check above runs before the imports that would fail)

from starlette.routing import BaseRoute

from tessera.console.app import ConsoleEndpoints
from tessera.identity.compose import Identity

__all__ = ["ConsoleEndpoints", "console_routes"]


def console_routes(identity: Identity) -> list[BaseRoute]:
    return ConsoleEndpoints(identity).routes()
