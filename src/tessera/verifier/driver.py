"""``Verifier``: the pure decision wired to a JWKS cache, local revocation state and a
clock — what a service embeds (ASGI middleware and dependencies wrap this)."""

from __future__ import annotations

from tessera.core.clock import Clock
from tessera.protocol.rfc9068.cache import VerifiedTokenCache
from tessera.verifier._keyset import KeySet
from tessera.verifier._policy import VerificationPolicy
from tessera.verifier._reference import ReferenceTokens, is_reference_token
from tessera.verifier._token import VerifiedToken
from tessera.verifier._verify import verify_access_token
from tessera.verifier.errors import Denied, Reason
from tessera.verifier.jwks import JwksCache
from tessera.verifier.revocation.state import RevocationState

__all__ = ["Verifier"]


class Verifier:
    """Verifies access tokens for one service.

    The revocation state is fed by a bus follower (``state.apply`` / ``load_snapshot``);
    a ``key.rotated`` event makes the next call refetch the JWKS.
    """

    def __init__(
        self,
        policy: VerificationPolicy,
        *,
        jwks: JwksCache,
        clock: Clock,
        state: RevocationState | None = None,
        cache: VerifiedTokenCache | None = None,
        references: ReferenceTokens | None = None,
    ) -> None:
        """``references``: accept reference (opaque) tokens through introspection."""
        self.policy = policy
        self.references = references
        self.jwks = jwks
        self.state = state if state is not None else RevocationState()
        self.cache = cache if cache is not None else VerifiedTokenCache()
        self._clock = clock
        self._key_epoch = self.state.key_epoch

    async def verify(
        self, token: str, *, policy: VerificationPolicy | None = None
    ) -> VerifiedToken:
        """Return the verified token or raise ``Denied``; ``policy`` overrides per route.

        Raises ``KeysUnavailable`` if no JWKS could ever be fetched.
        """
        if self.references is not None and is_reference_token(token):
            return await self.references.verify(
                token, policy=policy if policy is not None else self.policy,
                state=self.state, now=self._clock.now())
        if self.state.key_epoch != self._key_epoch:
            self._key_epoch = self.state.key_epoch
            if self.state.announced_kid:
                self.jwks.expect(self.state.announced_kid)
            else:
                self.jwks.invalidate()
        keys = await self.jwks.get()
        policy = policy if policy is not None else self.policy
        try:
            return self._decide(token, keys, policy)
        except Denied as denied:
            if denied.reason is not Reason.UNKNOWN_KID:
                raise
            newer = await self.jwks.refetch_for_unknown_kid(keys)
            if newer is keys:
                raise
            return self._decide(token, newer, policy)

    def _decide(self, token: str, keys: KeySet, policy: VerificationPolicy) -> VerifiedToken:
        return verify_access_token(
            token, keys=keys, policy=policy, revocation_state=self.state,
            now=self._clock.now(), cache=self.cache,
        )

    async def aclose(self) -> None:
        await self.jwks.aclose()
