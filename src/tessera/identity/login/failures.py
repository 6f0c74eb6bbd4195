"""Why a login did not happen: the one exception the login page, the console gate and the
device flow show to the user (kept apart from ``service`` so that ``bounds``, which
raises it, does not import the service that uses the bounds)."""

from __future__ import annotations

__all__ = ["LoginFailed"]


class LoginFailed(Exception):
    def __init__(self, message: str, *, throttled: bool = False) -> None:
        super().__init__(message)
        self.throttled = throttled
