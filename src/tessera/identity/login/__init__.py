"""Browser login: password check (argon2id), browser sessions, CSRF, the login page."""

from tessera.identity.login.passwords import PasswordHasher
from tessera.identity.login.service import LoginFailed, LoginService

__all__ = ["LoginFailed", "LoginService", "PasswordHasher"]
