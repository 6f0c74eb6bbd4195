"""Audit events, logging and metrics shared by every Tessera component."""

from tessera.observability import events
from tessera.observability.audit import AuditLog

__all__ = ["AuditLog", "events"]
