"""Tessera: session lifecycle for microservices (issue, propagate, verify, revoke, observe)."""

__all__ = ["__version__"]
__version__ = "0.1.0"
