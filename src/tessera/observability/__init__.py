"""Audit events, logging, metrics and tracing shared by every Tessera component.

Import the module you need by path (``observability.events``, ``observability.tracing``);
this package loads nothing itself, so a verifier using the event names or the tracing
helpers never loads the audit log (``observability.audit``, which writes through the
store port)."""
