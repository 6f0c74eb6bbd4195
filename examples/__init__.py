"""Runnable examples that use only Tessera's public APIs."""
