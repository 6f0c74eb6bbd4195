"""``Authorizer``: one access decision per proxied request, in named steps::

    match_rule (policy) → read the token (Bearer, or DPoP with its proof) → verify (SDK:
      signature, iss, per-route aud, lifetime, local revocation state, DPoP binding: a
      ``cnf.jkt`` token only with a proof of its key for the original method and URL;
      freshness rule of every route: never loaded or past the bound → deny or
      introspect, unless the rule opted in with ``accept_stale``)
      → decide (pure: scopes, acr, max_age) → exchange (RFC 8693, cached) → record

``record`` goes through the SDK (``VerifierService.record``): one ``access.allowed`` /
``access.denied`` event on ``tessera.audit`` with the deciding rule as ``route``
(``routes[2] GET api.example/orders/*``) and the correlation id, and the SDK's decision
metrics; plus the gateway's per-rule counter. Nothing here raises: an unexpected error
is logged and answered 401 ``temporarily_unavailable``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Final, NamedTuple
from urllib.parse import urlsplit

from tessera.core.secrets import token_hash
from tessera.gateway.decision import (
    VALID,
    Decision,
    allow_public,
    challenge,
    decide,
    deny_bad_request,
    deny_exchange,
    deny_internal_error,
    deny_unmatched,
)
from tessera.gateway.denials import KEYS_UNAVAILABLE, Unavailable
from tessera.gateway.exchange import ExchangeRefused, ExchangeUnavailable, TokenExchanger
from tessera.gateway.metrics import GatewayMetrics
from tessera.gateway.policy import Policy, Rule
from tessera.gateway.request import BadRequest, OriginalRequest, presented_token
from tessera.verifier import Denied, KeysUnavailable, Reason, VerificationPolicy, VerifiedToken
from tessera.verifier._mtls import check_certificate_binding
from tessera.verifier.decisions import Decision as DecisionRecord
from tessera.verifier.dpop import NonceRequired, Presentation
from tessera.verifier.service import VerifierService

__all__ = ["Authorizer", "Verdict"]

_log = logging.getLogger("tessera.gateway")
DPOP: Final = "dpop"
BEARER_PRESENTATION: Final = Presentation()
DPOP_REASONS: Final = frozenset({Reason.INVALID_DPOP_PROOF, Reason.DPOP_REPLAYED,
                                 Reason.USE_DPOP_NONCE, Reason.DPOP_BINDING})


class Verdict(NamedTuple):
    decision: Decision
    exchanged_token: str | None = None
    """The RFC 8693 token for the upstream (``exchange_to`` rules, when allowed)."""


class Authorizer:
    """The gateway's decisions for one policy, verified by one ``VerifierService``."""

    def __init__(self, service: VerifierService, policy: Policy, *,
                 exchanger: TokenExchanger | None = None,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        if policy.exchange_targets and exchanger is None:
            raise ValueError("the policy has exchange_to routes but no TokenExchanger")
        self.service = service
        self.policy = policy
        self.exchanger = exchanger
        self.metrics = GatewayMetrics(service.registry, exchanger)
        self._timer = timer
        settings = service.settings
        rules = (*policy.rules, Rule(None))
        self._verification = {
            rule.index: VerificationPolicy(settings.issuer, rule.audience or settings.audience,
                                           leeway=settings.leeway)
            for rule in rules}
        self._strict = {rule.index: settings.strict_by_default if rule.strict is None
                        else rule.strict for rule in rules}
        for rule in rules:
            if rule.accept_stale and self._strict[rule.index]:
                raise ValueError(f"{rule.label}: a strict route cannot accept_stale "
                                 "(TESSERA_VERIFIER_STRICT_BY_DEFAULT is set)")
        self._names = {rule.index: rule.description for rule in rules}

    async def authorize(self, request: OriginalRequest | BadRequest,
                        authorizations: Sequence[str], correlation_id: str, *,
                        proofs: Sequence[str] = (),
                        client_cert: str | None = None) -> Verdict:
        """Decide, exchange if the rule says so, record. Never raises (but cancellation).
        ``proofs``: every ``DPoP`` header of the original request; ``client_cert``: its
        client certificate (PEM) when it came over mutual TLS (RFC 8705 §3)."""
        started = self._timer()
        token: str | None = None
        try:
            verdict, token = await self._authorize(request, authorizations, proofs,
                                                   client_cert)
        except Exception:
            _log.exception("gateway decision failed (correlation id %s)", correlation_id)
            verdict = Verdict(deny_internal_error())
        self.record(verdict.decision, started, correlation_id, token)
        return verdict

    async def _authorize(self, request: OriginalRequest | BadRequest,
                         authorizations: Sequence[str], proofs: Sequence[str] = (),
                         client_cert: str | None = None) -> tuple[Verdict, str | None]:
        if isinstance(request, BadRequest):
            return Verdict(deny_bad_request(request.description)), None
        rule = self.policy.match(request.host, request.method, request.path)
        if rule is None:
            return Verdict(deny_unmatched()), None
        if rule.public:
            return Verdict(allow_public(rule)), None
        try:
            scheme, token = presented_token(authorizations)
        except Denied as denied:
            return Verdict(self.decide(rule, denied, VALID)), None
        presentation = self.presentation(request, scheme, proofs)
        if client_cert is not None:
            presentation = dataclasses.replace(presentation, client_cert=client_cert)
        outcome, reason = await self.verify(token, rule, presentation)
        decision = self.with_dpop_challenge(self.decide(rule, outcome, reason), outcome,
                                            scheme)
        if not (decision.allowed and rule.exchange_to):
            return Verdict(decision), token
        assert decision.token is not None
        return await self.exchange(token, rule, decision, decision.token), token

    async def verify(self, token: str, rule: Rule,
                     presentation: Presentation = BEARER_PRESENTATION,
                     ) -> tuple[VerifiedToken | Denied, str]:
        """The SDK's verification with the rule's audience, DPoP binding and freshness
        rule; the verified token and the allowed-reason (``valid``, ``introspected``,
        ``stale_accepted``), or the refusal."""
        service = self.service
        policy = self._verification[rule.index]
        try:
            verified = await service.verifier.verify(token, policy=policy)
            await service.dpop.check(verified, token, presentation)
            check_certificate_binding(verified, presentation.client_cert)
            return await service.freshness_rule(
                token, verified, policy, strict=self._strict[rule.index],
                accept_stale=rule.accept_stale, route=self._names[rule.index])
        except Denied as denied:
            return denied, VALID
        except KeysUnavailable as exc:
            _log.warning("no verification keys: %s", exc)
            return Unavailable(KEYS_UNAVAILABLE, str(exc)), VALID

    def presentation(self, request: OriginalRequest, scheme: str,
                     proofs: Sequence[str]) -> Presentation:
        """How the token came (RFC 9449 §7): for DPoP, the proofs, the original method and
        the URL ``htu`` must name (``dpop_public_url`` + path when configured)."""
        if scheme != DPOP:
            return BEARER_PRESENTATION
        url = request.url
        public = self.service.settings.dpop_public_url
        if public and url:
            url = public.rstrip("/") + urlsplit(url).path
        return Presentation(DPOP, tuple(proofs), request.method, url)

    def with_dpop_challenge(self, decision: Decision, outcome: VerifiedToken | Denied,
                            scheme: str) -> Decision:
        """A refusal of a DPoP presentation, or about DPoP, answered with RFC 9449 §7.1's
        ``DPoP`` challenge (its own error code, ``algs``, and a nonce when one is due)."""
        denied = outcome if isinstance(outcome, Denied) else None
        if decision.allowed or decision.challenge is None or (
                denied is None and scheme != DPOP):
            return decision
        algs = (self.service.dpop.challenge_algs(denied, scheme) if denied is not None
                else self.service.dpop.algs)
        if algs is None:
            return decision
        error, description = decision.error, decision.description
        if denied is not None and denied.reason in DPOP_REASONS:
            error, description = denied.error, denied.description
        bearer = challenge(error, description) if error != decision.error else \
            decision.challenge
        dpop = "DPoP" + bearer[len("Bearer"):]
        dpop += f'{", " if dpop != "DPoP" else " "}algs="{algs}"'
        nonce = denied.nonce if isinstance(denied, NonceRequired) else None
        return dataclasses.replace(decision, error=error, description=description,
                                   challenge=dpop, dpop_nonce=nonce)

    def decide(self, rule: Rule, outcome: VerifiedToken | Denied, reason: str) -> Decision:
        service = self.service
        return decide(rule, outcome, acr_levels=self.policy.acr_levels,
                      now=service.clock.now(), leeway=service.settings.leeway,
                      allowed_reason=reason)

    async def exchange(self, token: str, rule: Rule, decision: Decision,
                       verified: VerifiedToken) -> Verdict:
        assert self.exchanger is not None and rule.exchange_to is not None
        try:
            exchanged = await self.exchanger.exchange(token, rule.exchange_to,
                                                      rule.exchange_scope)
        except ExchangeRefused as exc:
            _log.warning("token exchange for %s refused: %s", rule.exchange_to, exc)
            return Verdict(deny_exchange(rule, verified, exc.error))
        except ExchangeUnavailable as exc:
            _log.warning("token exchange for %s failed: %s", rule.exchange_to, exc)
            return Verdict(deny_exchange(rule, verified, None))
        return Verdict(decision, exchanged)

    def record(self, decision: Decision, started: float, correlation_id: str,
               token: str | None) -> None:
        rule = decision.rule
        route = self._names[rule.index] if rule is not None else decision.rule_label
        self.service.record(DecisionRecord(
            decision.allowed, decision.reason, decision.status, self._timer() - started,
            route, correlation_id, decision.token,
            token_hash(token) if token is not None else None))
        self.metrics.observe(decision)
