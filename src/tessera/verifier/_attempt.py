"""``Attempt``: one access decision in steps (``verify`` → ``require`` → ``allow``), made
through a ``VerifierService`` so it is decided, logged and counted one way."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from tessera.verifier._claims import check_scopes, check_user_authentication
from tessera.verifier._decisions import ALLOWED_VALID, Decision, hash_token
from tessera.verifier._denials import MissingToken, check_owner, check_tenant, label_of
from tessera.verifier._dpop import BEARER_PRESENTATION, Presentation
from tessera.verifier._errors import Denied
from tessera.verifier._mtls import check_certificate_binding
from tessera.verifier._token import VerifiedToken

if TYPE_CHECKING:
    from tessera.verifier._service import VerifierService

__all__ = ["Attempt"]


class Attempt:
    """One access decision in steps. Every denial is recorded when raised; ``allow``
    records the success once (a second ``allow`` on the same attempt records nothing)."""

    def __init__(self, service: VerifierService, route: str | None,
                 correlation_id: str | None, started: float) -> None:
        self._service = service
        self.route = route
        self.correlation_id = correlation_id
        self._started = started
        self._raw: str | None = None
        self.token: VerifiedToken | None = None
        self._reason = ALLOWED_VALID
        self.decided = False

    async def verify(self, token: str | None, *, scopes: Iterable[str] = (),
                     strict: bool | None = None, min_acr: str | None = None,
                     max_auth_age: int | None = None,
                     presentation: Presentation | None = None,
                     accept_stale: bool = False) -> VerifiedToken:
        self._raw = token
        strict = self._service.settings.strict_by_default if strict is None else strict
        service = self._service
        try:
            if token is None:
                raise MissingToken()
            policy = service.policy_for(scopes, min_acr=min_acr, max_auth_age=max_auth_age)
            self.token = await service.verify_locally(token)
            await service.dpop.check(self.token, token, presentation or BEARER_PRESENTATION)
            check_certificate_binding(self.token, (presentation or BEARER_PRESENTATION
                                                   ).client_cert)
            check_scopes(self.token, policy)
            check_user_authentication(self.token, policy, service.clock.now())
            self.token, self._reason = await service.freshness_rule(
                token, self.token, policy, strict=strict, accept_stale=accept_stale,
                route=self.route)
        except Denied as denied:
            self.deny(denied)
            raise
        return self.token

    def require(self, *, tenant: str | None = None, owner: str | None = None) -> None:
        """Tenant and ownership rules on the verified token (``Forbidden``, 403)."""
        assert self.token is not None, "verify first"
        try:
            check_tenant(self.token, tenant)
            check_owner(self.token, owner)
        except Denied as denied:
            self.deny(denied)
            raise

    def allow(self) -> VerifiedToken:
        assert self.token is not None, "verify first"
        if not self.decided:
            self._finish(True, self._reason, 200)
        return self.token

    def deny(self, denied: Denied) -> None:
        """Record ``denied`` (the caller raises it)."""
        self._finish(False, label_of(denied), denied.status)

    def _finish(self, allowed: bool, reason: str, status: int) -> None:
        self.decided = True
        service = self._service
        service.record(Decision(allowed, reason, status, service.elapsed(self._started),
                                self.route, self.correlation_id, self.token,
                                hash_token(self._raw)))
