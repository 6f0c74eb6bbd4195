"""The decision log: one ``access.allowed`` / ``access.denied`` event per decision.

Each event is one JSON line on the ``tessera.audit`` logger, in the audit schema of
DESIGN §7 (the same field names the identity service writes)::

    {"event": "access.denied", "at": 1800000000.0, "service": "orders",
     "route": "/orders/{order_id}", "decision": "denied", "reason": "session_revoked",
     "status": 401, "user_id": "...", "tenant_id": "...", "client_id": "...", "jti": "...",
     "sid_hash": "...", "token_hash": "...", "correlation_id": "...", "latency_us": 41}

A delegated or impersonation token (RFC 8693 ``act``) adds ``actor``: the ``act.sub`` of
the party acting for ``user_id``, so every use names both identities. ``user_id``,
``tenant_id`` and ``client_id`` are the token's ``sub``, ``tid`` and ``client_id`` claims
under the names the audit trail uses (docs/architecture.md, naming vocabulary).

``reason`` is ``valid`` (verified locally), ``introspected`` (allowed by the issuer's
introspection while the local state was stale) or the denial label (``Reason`` values,
``missing_token``, ``wrong_tenant``, ``not_owner``, ``keys_unavailable``,
``introspection_unavailable``). Tokens never appear: only ``token_hash`` (SHA-256,
base64url) and ``sid_hash``. Fields that are unknown are left out.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final, NamedTuple

import orjson

from tessera.core.clock import Clock
from tessera.core.secrets import token_hash
from tessera.observability.events import ACCESS_ALLOWED, ACCESS_DENIED
from tessera.verifier._token import VerifiedToken
from tessera.verifier._verify import MAX_TOKEN_LENGTH

__all__ = ["ALLOWED_INTROSPECTED", "ALLOWED_STALE", "ALLOWED_VALID", "Decision", "DecisionLog",
           "correlation_id_from", "hash_token"]

ALLOWED_VALID: Final = "valid"
ALLOWED_INTROSPECTED: Final = "introspected"
ALLOWED_STALE: Final = "stale_accepted"
"""Allowed past the staleness bound on a route that opted in (``accept_stale``)."""
AUDIT_LOGGER: Final = "tessera.audit"

_CORRELATION_ID: Final = re.compile(r"[A-Za-z0-9._:/+=\-]{1,128}")


class Decision(NamedTuple):
    """One access decision, as recorded (never holds the raw token)."""

    allowed: bool
    reason: str
    status: int
    """HTTP status the decision maps to (200 when allowed)."""
    latency: float
    """Seconds spent deciding."""
    route: str | None = None
    correlation_id: str | None = None
    token: VerifiedToken | None = None
    """The verified claims, when the token got that far."""
    token_hash: str | None = None


def correlation_id_from(value: str | None) -> str | None:
    """An ``X-Request-Id`` value fit for a log (bounded, no control characters), else None."""
    if value is None or not _CORRELATION_ID.fullmatch(value):
        return None
    return value


def hash_token(token: str | None) -> str | None:
    """``token_hash`` of a plausible token; None for none or an oversized one."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return token_hash(token)


class DecisionLog:
    """Writes decisions as JSON lines to ``tessera.audit`` (or the logger given)."""

    def __init__(self, service: str, *, clock: Clock,
                 logger: logging.Logger | None = None) -> None:
        self.service = service
        self._clock = clock
        self._log = logger if logger is not None else logging.getLogger(AUDIT_LOGGER)

    def emit(self, decision: Decision) -> None:
        if not self._log.isEnabledFor(logging.INFO):
            return
        self._log.info(orjson.dumps(self.event(decision)).decode("utf-8"))

    def event(self, decision: Decision) -> dict[str, Any]:
        """The audit event for ``decision`` (what ``emit`` writes)."""
        token = decision.token
        fields: dict[str, Any] = {
            "event": ACCESS_ALLOWED if decision.allowed else ACCESS_DENIED,
            "at": self._clock.now(),
            "service": self.service,
            "route": decision.route,
            "decision": "allowed" if decision.allowed else "denied",
            "reason": decision.reason,
            "status": decision.status,
            "correlation_id": decision.correlation_id,
            "latency_us": round(decision.latency * 1_000_000),
            "token_hash": decision.token_hash,
        }
        if token is not None:
            fields.update(user_id=token.sub, tenant_id=token.tid, client_id=token.client_id,
                          jti=token.jti,
                          sid_hash=token_hash(token.sid) if token.sid is not None else None)
            actor = token.act.get("sub") if token.act is not None else None
            if isinstance(actor, str):
                fields["actor"] = actor  # RFC 8693 §4.1: who acts for the subject
        return {k: v for k, v in fields.items() if v is not None}
