"""Signal events for the SSF transmitter (CAEP 1.0), written in the transaction of the
change they describe (the signal outbox; ``identity.signals.fanout`` turns them into
SETs). Session ends need nothing here: they are read from the revocation outbox."""

from __future__ import annotations

from typing import Any

from tessera.application.transaction import Transaction
from tessera.core.signals import (
    CAEP_ASSURANCE_LEVEL_CHANGE,
    CAEP_CREDENTIAL_CHANGE,
    CAEP_RISK_LEVEL_CHANGE,
    CAEP_TOKEN_CLAIMS_CHANGE,
    SignalEvent,
)

__all__ = ["assurance_changed", "claims_changed", "credential_changed", "risk_changed"]


async def _record(tx: Transaction, kind: str, *, user_id: str, tenant_id: str | None,
                  at: float, data: dict[str, Any]) -> None:
    await tx.uow.signals.record(SignalEvent(kind=kind, tenant_id=tenant_id, user_id=user_id,
                                            at=at, data=data))


async def credential_changed(tx: Transaction, *, user_id: str, tenant_id: str | None,
                             at: float, credential_type: str, change_type: str,
                             initiator: str = "user") -> None:
    """CAEP §3.3: ``credential_type`` (``password``, ``app``…), ``change_type``
    (``create``, ``revoke``, ``update``, ``delete``)."""
    await _record(tx, CAEP_CREDENTIAL_CHANGE, user_id=user_id, tenant_id=tenant_id, at=at,
                  data={"credential_type": credential_type, "change_type": change_type,
                        "initiating_entity": initiator})


async def claims_changed(tx: Transaction, *, user_id: str, tenant_id: str | None, at: float,
                         claims: dict[str, Any], initiator: str = "admin") -> None:
    """CAEP §3.2: the claims' new values."""
    await _record(tx, CAEP_TOKEN_CLAIMS_CHANGE, user_id=user_id, tenant_id=tenant_id, at=at,
                  data={"claims": claims, "initiating_entity": initiator})


async def assurance_changed(tx: Transaction, *, user_id: str, tenant_id: str | None,
                            at: float, previous: str, current: str, sid: str) -> None:
    """CAEP §3.4: the session's ``acr`` changed (step-up)."""
    await _record(tx, CAEP_ASSURANCE_LEVEL_CHANGE, user_id=user_id, tenant_id=tenant_id,
                  at=at, data={"namespace": "custom", "previous_level": previous,
                               "current_level": current, "session_id": sid,
                               "initiating_entity": "user"})


async def risk_changed(tx: Transaction, *, user_id: str, tenant_id: str | None, at: float,
                       reason: str, level: str, detail: dict[str, Any]) -> None:
    """CAEP §3.6 ``risk-level-change``: a detection (``identity.signals.risk``)."""
    await _record(tx, CAEP_RISK_LEVEL_CHANGE, user_id=user_id, tenant_id=tenant_id, at=at,
                  data={"principal": "USER", "current_level": level, "risk_reason": reason,
                        "initiating_entity": "system", "detection": detail})
