"""Refusals the gateway raises itself, beside the verifier's ``Denied`` reasons.

They are the SDK's own refusal types (one definition for both), extending ``Denied`` (so
one ``except Denied`` sees every refusal) and carrying a ``label``, the ``reason`` in
decision events and metrics::

    Denied (tessera.verifier)
     ├── MissingToken    "missing_token"              no bearer token in the request
     └── Unavailable     "keys_unavailable" | ...     cannot decide now (answered as 401
                                                      temporarily_unavailable, never 5xx)
"""

from __future__ import annotations

from typing import Final

from tessera.verifier.errors import KEYS_UNAVAILABLE, MissingToken, Unavailable, label_of

__all__ = ["KEYS_UNAVAILABLE", "MISSING_TOKEN", "MissingToken", "Unavailable", "label_of"]

MISSING_TOKEN: Final = MissingToken.label
