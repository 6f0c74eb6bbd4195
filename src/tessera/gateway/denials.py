"""Refusals the gateway raises itself, beside the verifier's ``Denied`` reasons.

They extend the SDK's ``Denied`` (so one ``except Denied`` sees every refusal) and carry
a ``label``, the ``reason`` in decision events and metrics::

    Denied (tessera.verifier)
     ├── MissingToken    "missing_token"              no bearer token in the request
     └── Unavailable     "keys_unavailable" | ...     cannot decide now (answered as 401
                                                      temporarily_unavailable, never 5xx)
"""

from __future__ import annotations

from typing import Final

from tessera.verifier import Denied, Reason

__all__ = ["KEYS_UNAVAILABLE", "MISSING_TOKEN", "MissingToken", "Unavailable", "label_of"]

MISSING_TOKEN: Final = "missing_token"
KEYS_UNAVAILABLE: Final = "keys_unavailable"


class MissingToken(Denied):
    """RFC 6750 §3.1: a request without any authentication gets no error code."""

    label = MISSING_TOKEN

    def __init__(self) -> None:
        super().__init__(Reason.MALFORMED, "no bearer token")

    @property
    def description(self) -> str:
        return "An access token is required."


class Unavailable(Denied):
    """The gateway cannot decide right now (no verification keys, ...)."""

    def __init__(self, label: str, detail: str = "") -> None:
        super().__init__(Reason.STALE_STATE, detail)
        self.label = label

    @property
    def description(self) -> str:
        return "The access token cannot be verified right now; try again later."


def label_of(denied: Denied) -> str:
    """The decision ``reason`` of a refusal (the SDK's labels, else the ``Reason``)."""
    label = getattr(denied, "label", None)
    return label if isinstance(label, str) else denied.reason.value
