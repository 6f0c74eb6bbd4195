"""Per-client exchange policy (RFC 8693 §2.1 leaves authorisation to the server).

Without an entry, a client may exchange into the audiences it is registered for, for any
subset of the subject token's scopes (and of its own scopes, if it has any), for at most
the access-token lifetime, with an ``act`` chain of at most ``DEFAULT_MAX_ACT_DEPTH``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tessera.core.clients import Client
from tessera.core.scopes import ScopeError, narrow_scope
from tessera.protocol.errors import InvalidScope, InvalidTarget

__all__ = ["DEFAULT_MAX_ACT_DEPTH", "ExchangePolicy"]

DEFAULT_MAX_ACT_DEPTH = 4


@dataclass(frozen=True, slots=True)
class ExchangePolicy:
    audiences: Mapping[str, frozenset[str]] | None = None
    """Audience → scopes allowed there (empty set: any the subject holds). ``None``: the
    client's registered audiences, any scope."""
    max_lifetime: int | None = None
    """Seconds; never more than the subject token's remaining life either."""
    max_act_depth: int = DEFAULT_MAX_ACT_DEPTH

    def check_target(self, audience: str, client: Client) -> None:
        allowed = self.audiences.keys() if self.audiences is not None else client.audiences
        if audience not in allowed:
            raise InvalidTarget("the client may not obtain tokens for this audience")

    def grant_scope(self, requested: frozenset[str], held: frozenset[str], audience: str,
                    client: Client) -> frozenset[str]:
        allowed = held & client.scopes if client.scopes else held
        if self.audiences is not None and self.audiences.get(audience):
            allowed &= self.audiences[audience]
        try:
            return narrow_scope(requested, allowed)
        except ScopeError:
            raise InvalidScope("the requested scope exceeds what may be exchanged") from None
