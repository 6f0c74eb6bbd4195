"""The BFF's sessions: login (code + PKCE + state + nonce), use (refresh, liveness),
logout (revocation, end-session URL).

A login's transaction is stored under the hash of a random handle that only the browser
holds (the login cookie); the callback takes it out atomically, so a replayed callback,
one from another browser, or one whose ``state`` differs finds nothing and is refused.
The session itself is stored the same way under the session cookie's handle.

Each use of a session (``open``):

1. absolute expiry (``session_absolute_timeout``), idle expiry (the store's TTL,
   renewed on every use);
2. the access token is refreshed ``refresh_margin`` seconds before it expires (one
   refresh per session at a time in this process; the identity service's grace window
   covers two replicas refreshing at once); a refused refresh ends the session;
3. liveness: with ``revocation_feed``, the access token is checked against the
   revocation state the verifier SDK's follower keeps from the identity service's feed
   (every revocation pushed, applied locally, so a session revoked there is refused as
   soon as the event arrives); otherwise — or while that state is stale — at most every
   ``session_check_interval`` seconds the identity service is asked (RFC 7662) whether
   the access token is still active. Either way a session revoked there (logout
   elsewhere, an administrator, a password reset, the user's "end all") is refused here.

Errors: ``LoginFailed`` (the callback cannot complete; ``error`` is an OAuth-style code),
the client's ``IdentityUnavailable`` and the vault's ``VaultUnavailable`` (503).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass
from typing import Any, Final

import orjson

from tessera.bff.oidc_client import (
    IdentityClient,
    IdentityError,
    IdentityUnavailable,
    IdTokenInvalid,
    TokenRefused,
)
from tessera.bff.settings import BffSettings
from tessera.bff.vault import BffSession, LoginTransaction, SealedVault
from tessera.core.clock import Clock
from tessera.core.secrets import constant_time_equal, new_secret, token_hash
from tessera.protocol.rfc9449 import ProofSigner
from tessera.verifier import Denied, Reason
from tessera.verifier.service import VerifierService

__all__ = ["PUBLIC_CLAIMS", "LoginFailed", "SessionManager", "is_local_path"]

PUBLIC_CLAIMS: Final = ("sub", "tid", "acr", "amr", "auth_time", "name", "preferred_username",
                        "email", "email_verified")
"""ID token claims ``/bff/session`` shows the single-page app."""

_REVOKED: Final = frozenset({Reason.TOKEN_REVOKED, Reason.SESSION_REVOKED,
                             Reason.FAMILY_REVOKED, Reason.USER_REVOKED,
                             Reason.TENANT_REVOKED, Reason.CLIENT_REVOKED})
"""Verdicts of the revocation state that end a BFF session (a stale session version
only asks for a fresh token; anything else falls back to introspection)."""

_log = logging.getLogger("tessera.bff")
_audit = logging.getLogger("tessera.audit")


def _event(name: str, **fields: Any) -> None:
    """One JSON line on ``tessera.audit`` (``<noun>.<past-tense verb>``; hashes of the
    session handle and ``sid``, never a token or a cookie)."""
    _audit.info(orjson.dumps({"event": name, **fields}).decode())


class LoginFailed(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


def is_local_path(value: str | None) -> bool:
    """A path on this origin (``/x``), never ``//host``, ``/\\host`` or a scheme."""
    return bool(value) and value is not None and value.startswith("/") \
        and not value.startswith("//") and "\\" not in value \
        and not any(ord(c) < 0x20 for c in value) and len(value) <= 2048


@dataclass(frozen=True, slots=True)
class OpenedSession:
    handle: str
    session: BffSession

    @property
    def signer(self) -> ProofSigner | None:
        jwk = self.session.dpop_jwk
        return ProofSigner.from_jwk(jwk) if jwk else None


class SessionManager:
    def __init__(self, settings: BffSettings, vault: SealedVault, client: IdentityClient,
                 clock: Clock, *, revocations: VerifierService | None = None) -> None:
        self.settings = settings
        self.vault = vault
        self.client = client
        self.revocations = revocations
        self._clock = clock
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = \
            weakref.WeakValueDictionary()

    # login -------------------------------------------------------------------------------
    async def start_login(self, return_to: str | None) -> tuple[str, str]:
        """(authorization URL, login handle for the login cookie)."""
        handle = new_secret()
        login = LoginTransaction(
            state=new_secret(), nonce=new_secret(), code_verifier=new_secret(48),
            return_to=return_to if is_local_path(return_to) and return_to is not None
            else self.settings.post_login_redirect, created_at=self._clock.now())
        await self.vault.put_login(handle, login, self.settings.login_timeout)
        url = await self.client.authorization_url(state=login.state, nonce=login.nonce,
                                                  code_verifier=login.code_verifier)
        return url, handle

    async def complete_login(self, login_handle: str | None,
                             params: dict[str, str]) -> tuple[str, str]:
        """The callback: (new session handle, where to send the browser)."""
        if not login_handle:
            raise LoginFailed("invalid_request", "no login is in progress in this browser")
        login = await self.vault.take_login(login_handle)  # single use, even if it fails
        if login is None:
            raise LoginFailed("invalid_request",
                              "this login is unknown, expired or already completed")
        if not constant_time_equal(params.get("state", ""), login.state):
            raise LoginFailed("invalid_request", "state does not match this login")
        await self._check_iss(params.get("iss"))
        if "error" in params:
            raise LoginFailed(params["error"][:64] or "access_denied",
                              "the identity service did not sign you in")
        code = params.get("code")
        if not code:
            raise LoginFailed("invalid_request", "the callback has no code")
        signer = ProofSigner.generate() if self.settings.dpop else None
        try:
            tokens = await self.client.exchange_code(code, login.code_verifier, signer)
            if tokens.id_token is None:
                raise LoginFailed("invalid_grant", "the token response has no id_token")
            claims = await self.client.verify_id_token(tokens.id_token, nonce=login.nonce)
        except TokenRefused as exc:
            raise LoginFailed(exc.error, "the identity service refused the code") from None
        except IdTokenInvalid as exc:
            _log.warning("bff login refused: %s", exc)
            raise LoginFailed("invalid_grant", "the ID token is not valid") from None
        if signer is not None and tokens.token_type != "DPoP":
            raise LoginFailed("invalid_dpop_proof", "the identity service did not bind the "
                              "tokens to the session's DPoP key (TESSERA_BFF_DPOP is on)")
        now = self._clock.now()
        session = BffSession(
            sub=str(claims["sub"]), sid=claims.get("sid") if isinstance(claims.get("sid"), str)
            else None, id_token=tokens.id_token, access_token=tokens.access_token,
            refresh_token=tokens.refresh_token, token_type=tokens.token_type,
            expires_at=tokens.expires_at, scope=tokens.scope,
            claims={k: claims[k] for k in PUBLIC_CLAIMS if k in claims}, created_at=now,
            absolute_expiry=now + self.settings.session_absolute_timeout,
            dpop_jwk=signer.private_jwk() if signer else None, checked_at=now)
        handle = new_secret()
        await self._save(handle, session)
        _event("bff_session.created", user_id=session.sub,
               sid_hash=token_hash(session.sid) if session.sid else None,
               session_hash=token_hash(handle), dpop=signer is not None)
        return handle, login.return_to

    async def _check_iss(self, iss: str | None) -> None:
        """RFC 9207 (mix-up defence): the response names its issuer, and it is ours."""
        required = (await self.client.metadata()).get(
            "authorization_response_iss_parameter_supported") is True
        if iss is None and not required:
            return
        if iss is None or not constant_time_equal(iss, self.settings.issuer):
            raise LoginFailed("invalid_request",
                              "the response does not come from the configured issuer")

    async def forget(self, handle: str | None) -> None:
        """Drop a session this browser replaces with a new login (no fixation)."""
        if handle:
            await self.vault.delete_session(handle)

    # use -----------------------------------------------------------------------------------
    async def open(self, handle: str | None, *, check: bool = True) -> OpenedSession | None:
        """The live session of ``handle`` with a usable access token, or None (ended)."""
        if not handle:
            return None
        session = await self.vault.get_session(handle)
        if session is None:
            return None
        if self._clock.now() >= session.absolute_expiry:
            await self.vault.delete_session(handle)
            return None
        if check:
            lock = self._locks.setdefault(SealedVault.session_key(handle), asyncio.Lock())
            async with lock:
                session = await self.vault.get_session(handle)  # another request's work
                if session is None or not await self._keep_alive(handle, session):
                    return None
        await self._save(handle, session)  # renews the idle timeout
        return OpenedSession(handle, session)

    async def _keep_alive(self, handle: str, session: BffSession) -> bool:
        now = self._clock.now()
        if session.expires_at - self.settings.refresh_margin <= now \
                and not await self._refresh(handle, session):
            return False
        if self.revocations is not None and not self.revocations.is_stale():
            verdict = await self._pushed_verdict(session)
            if verdict is Reason.STALE_SESSION_VERSION:  # roles changed: a fresh token
                if not await self._refresh(handle, session):
                    return False
                verdict = await self._pushed_verdict(session)
            if verdict is None:
                return True
            if verdict in _REVOKED:
                return await self._end_locally(handle, f"revoked ({verdict.value})")
            _log.warning("bff: the revocation state cannot decide (%s); asking the identity "
                         "service", verdict.value)  # e.g. a wrong TESSERA_BFF_AUDIENCE
            session.checked_at = 0.0
        if now - session.checked_at >= self.settings.session_check_interval:
            if not await self.client.is_active(session.access_token):
                return await self._end_locally(handle, "revoked at the identity service")
            session.checked_at = now
            await self._save(handle, session)
        return True

    async def _refresh(self, handle: str, session: BffSession) -> bool:
        if session.refresh_token is None:
            return await self._end_locally(handle, "access token expired, no refresh")
        signer = ProofSigner.from_jwk(session.dpop_jwk) if session.dpop_jwk else None
        try:
            tokens = await self.client.refresh(session.refresh_token, signer)
        except TokenRefused as exc:
            return await self._end_locally(handle, f"refresh refused: {exc.error}")
        session.access_token = tokens.access_token
        session.token_type = tokens.token_type
        session.expires_at = tokens.expires_at
        session.refresh_token = tokens.refresh_token or session.refresh_token
        session.scope = tokens.scope or session.scope
        session.checked_at = self._clock.now()  # the identity service just vouched for it
        await self._save(handle, session)
        return True

    async def _pushed_verdict(self, session: BffSession) -> Reason | None:
        """What the followed revocation state says of the access token (None: fine)."""
        assert self.revocations is not None
        try:
            await self.revocations.verify_locally(session.access_token)
        except Denied as exc:
            return exc.reason
        return None

    async def recheck_soon(self, opened: OpenedSession) -> None:
        """An upstream refused the token: ask the identity service on the next request."""
        opened.session.checked_at = 0.0
        await self._save(opened.handle, opened.session)

    # logout --------------------------------------------------------------------------------
    async def logout(self, handle: str | None) -> dict[str, Any]:
        """Revoke the tokens (RFC 7009: the refresh family, then the access token's
        ``jti``; both are revocation events every verifier follows), forget the session,
        and return where the browser ends its identity session."""
        session = await self.vault.get_session(handle) if handle else None
        if handle is None or session is None:
            return {"logged_out": True, "revoked": False, "logout_url": None}
        await self.vault.delete_session(handle)
        revoked = True
        try:
            if session.refresh_token:
                await self.client.revoke(session.refresh_token, "refresh_token")
            await self.client.revoke(session.access_token, "access_token")
        except IdentityError as exc:
            revoked = False
            _log.warning("bff logout: revocation failed (%s); the session is forgotten here "
                         "and ends at the identity service through end-session", exc)
        try:
            url = await self.client.end_session_url(session.id_token)
        except IdentityUnavailable:
            url = None
        _event("bff_session.logged_out", user_id=session.sub, session_hash=token_hash(handle),
               revoked=revoked)
        return {"logged_out": True, "revoked": revoked, "logout_url": url}

    # storage -------------------------------------------------------------------------------
    async def _save(self, handle: str, session: BffSession) -> None:
        remaining = session.absolute_expiry - self._clock.now()
        ttl = min(float(self.settings.session_idle_timeout), remaining)
        if ttl <= 0:
            await self.vault.delete_session(handle)
            return
        await self.vault.put_session(handle, session, ttl)

    async def _end_locally(self, handle: str, why: str) -> bool:
        await self.vault.delete_session(handle)
        _event("bff_session.ended", session_hash=token_hash(handle), reason=why)
        return False
