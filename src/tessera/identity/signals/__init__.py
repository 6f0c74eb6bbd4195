"""Outbound signals: OIDC Back-Channel Logout, the SSF/CAEP transmitter, global token
revocation and risk signals (docs/signals.md)."""

from tessera.identity.signals.wiring import SignalMetrics, Signals, SignalsHost, build_signals

__all__ = ["SignalMetrics", "Signals", "SignalsHost", "build_signals"]
