"""Browser login: password check (argon2id), TOTP second factor, browser sessions, CSRF,
the login page."""

from tessera.identity.login.failures import LoginFailed
from tessera.identity.login.passwords import PasswordHasher
from tessera.identity.login.pending import PendingLogins
from tessera.identity.login.service import LoginService
from tessera.identity.login.totp import TotpService

__all__ = ["LoginFailed", "LoginService", "PasswordHasher", "PendingLogins", "TotpService"]
