"""Rules shared by grants: scope narrowing, audience selection (RFC 8707) and the token
type of a DPoP-bound token (RFC 9449 §5)."""

from __future__ import annotations

from tessera.core.clients import Client
from tessera.core.scopes import ScopeError, narrow_scope, parse_scope
from tessera.protocol.errors import InvalidScope, InvalidTarget
from tessera.protocol.http import Params

__all__ = ["grant_scope", "select_audience", "token_type"]


def grant_scope(params: Params, allowed: frozenset[str]) -> frozenset[str]:
    try:
        return narrow_scope(parse_scope(params.get("scope")), allowed)
    except ScopeError as exc:
        raise InvalidScope(str(exc)) from None


def select_audience(params: Params, client: Client, default: str) -> tuple[str, ...]:
    """The token's audience: the requested ``resource`` (RFC 8707) or ``audience`` if the
    client holds it, else the client's first audience, else ``default``."""
    requested = params.get("resource") or params.get("audience")
    if requested is not None:
        if requested not in client.audiences:
            raise InvalidTarget("the requested resource is not available to this client")
        return (requested,)
    return (client.audiences[0],) if client.audiences else (default,)


def token_type(jkt: str | None) -> str:
    """RFC 9449 §5: ``DPoP`` for a token bound to a key, else ``Bearer`` (RFC 6750)."""
    return "DPoP" if jkt is not None else "Bearer"
