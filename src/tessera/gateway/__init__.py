"""Tessera edge gateway — the forward-auth decision endpoint for nginx ``auth_request``,
Envoy ``ext_authz`` (HTTP service) and Traefik ``forwardAuth`` (DESIGN §6).

Standards: RFC 6750 (bearer tokens and their challenges), RFC 9470 (step-up:
``insufficient_user_authentication``), RFC 8693 (token exchange for upstreams), W3C
Trace Context (correlation ids).

Verification is the verifier SDK's (``tessera.verifier``): the same signature, audience,
lifetime, revocation and staleness rules as inside the services. The gateway adds a route
policy file (``policy``), a pure decision (``decision``), the HTTP adapters
(``forward_auth``), the exchange client (``exchange``) and the app (``app``); ``tessera
gateway --policy FILE`` runs it.
"""

from tessera import _extras

_extras.require("server", "the edge gateway")  # one clear line without the extra
# ruff: noqa: E402 (the check above runs before the imports that would fail)

from tessera.gateway.app import GatewayConfigError, build_app, create_gateway
from tessera.gateway.authorizer import Authorizer, Verdict
from tessera.gateway.decision import Decision, decide
from tessera.gateway.exchange import (
    ExchangeError,
    ExchangeRefused,
    ExchangeUnavailable,
    TokenExchanger,
)
from tessera.gateway.policy import AcrLevels, Policy, PolicyError, Rule, load_policy, parse_policy
from tessera.gateway.request import BadRequest, OriginalRequest
from tessera.gateway.settings import GatewaySettings, verifier_settings

__all__ = [
    "AcrLevels",
    "Authorizer",
    "BadRequest",
    "Decision",
    "ExchangeError",
    "ExchangeRefused",
    "ExchangeUnavailable",
    "GatewayConfigError",
    "GatewaySettings",
    "OriginalRequest",
    "Policy",
    "PolicyError",
    "Rule",
    "TokenExchanger",
    "Verdict",
    "build_app",
    "create_gateway",
    "decide",
    "load_policy",
    "parse_policy",
    "verifier_settings",
]
