"""Example: an orders API protected by the Tessera verifier SDK (see ../README.md)."""
