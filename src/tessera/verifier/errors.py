"""Verifier errors: one hierarchy, every rejection carries a machine-readable reason.

::

    VerifierError
     ├── Denied           the token is rejected; ``reason`` says why (a ``Reason``)
     │    ├── StepUpRequired  valid, but the user must authenticate more strongly or more
     │    │                   recently (RFC 9470); carries ``acr_values`` and ``max_age``
     │    ├── MissingToken    no bearer token (RFC 6750 §3.1: no error code)        401
     │    ├── Forbidden       another tenant's or subject's resource                  403
     │    └── Unavailable     no keys, introspection unreachable                      503
     ├── KeysUnavailable  no key set could be obtained (JWKS never fetched successfully)
     ├── InvalidJwks      a JWKS document is not a JSON object with a ``keys`` list
     └── InvalidEvent     a revocation event or snapshot does not have the documented shape

``Denied.description`` is safe to send to the client; ``Denied.detail`` is for logs only
(RFC 6750 §3 ``error_description`` vs. a debug cause). ``label_of(denied)`` is the stable
string decision events and metrics use as ``reason`` (``reason.value`` unless the denial
carries a more specific ``label``). ``Reason`` is the one set of reason names of
``tessera.protocol.rfc9068.token``, shared with the identity service.
"""

from __future__ import annotations

from typing import Final

from tessera.protocol.rfc9068.token import Reason, TokenRejected

__all__ = [
    "INTROSPECTION_UNAVAILABLE",
    "KEYS_UNAVAILABLE",
    "NOT_OWNER",
    "WRONG_TENANT",
    "Denied",
    "Forbidden",
    "InvalidEvent",
    "InvalidJwks",
    "KeysUnavailable",
    "MissingToken",
    "Reason",
    "StepUpRequired",
    "Unavailable",
    "VerifierError",
    "label_of",
]


_DESCRIPTIONS: dict[Reason, str] = {
    Reason.MALFORMED: "The access token is malformed.",
    Reason.UNKNOWN_KID: "The access token is signed with an unknown key.",
    Reason.BAD_SIGNATURE: "The access token signature is invalid.",
    Reason.BAD_ALGORITHM: "The access token algorithm is not allowed.",
    Reason.WRONG_TYP: "The token is not an access token.",
    Reason.WRONG_ISSUER: "The access token was issued by another issuer.",
    Reason.WRONG_AUDIENCE: "The access token is not meant for this service.",
    Reason.EXPIRED: "The access token expired.",
    Reason.NOT_YET_VALID: "The access token is not valid yet.",
    Reason.INSUFFICIENT_SCOPE: "The access token lacks a required scope.",
    Reason.TOKEN_REVOKED: "The access token was revoked.",
    Reason.SESSION_REVOKED: "The session was revoked.",
    Reason.STALE_SESSION_VERSION: "The session changed; obtain a new access token.",
    Reason.USER_REVOKED: "The access token was revoked.",
    Reason.TENANT_REVOKED: "The access token was revoked.",
    Reason.CLIENT_REVOKED: "The access token was revoked.",
    Reason.FAMILY_REVOKED: "The session was revoked.",
    Reason.STALE_STATE: "Revocation state is out of date; try again later.",
    Reason.INSUFFICIENT_USER_AUTHENTICATION: "A different authentication level is required.",
    Reason.INVALID_DPOP_PROOF: "The DPoP proof is invalid.",
    Reason.DPOP_REPLAYED: "The DPoP proof was already used.",
    Reason.USE_DPOP_NONCE: "Resource server requires nonce in DPoP proof.",
    Reason.DPOP_BINDING: "The access token must be presented with a DPoP proof of its key.",
    Reason.CERTIFICATE_BINDING: "The access token must be presented over mutual TLS with "
                                "the certificate it is bound to.",
}


class VerifierError(Exception):
    """Base of every error the verifier raises."""


class Denied(VerifierError, TokenRejected):
    """The token is rejected.

    ``error`` and ``status`` follow RFC 6750 §3.1: ``insufficient_scope`` is 403, a stale
    revocation state is the verifier's fault (503, fail closed), RFC 9470's
    ``insufficient_user_authentication`` is 401, RFC 9449's ``invalid_dpop_proof`` and
    ``use_dpop_nonce`` are 401, everything else is ``invalid_token`` with 401.
    """

    @classmethod
    def of(cls, rejected: TokenRejected) -> Denied:
        """The SDK's form of a refusal the shared validator raised."""
        return rejected if isinstance(rejected, Denied) else cls(rejected.reason,
                                                                 rejected.detail)

    @property
    def error(self) -> str:
        if self.reason is Reason.INSUFFICIENT_SCOPE:
            return "insufficient_scope"
        if self.reason is Reason.STALE_STATE:
            return "temporarily_unavailable"
        if self.reason is Reason.INSUFFICIENT_USER_AUTHENTICATION:
            return "insufficient_user_authentication"
        if self.reason in (Reason.INVALID_DPOP_PROOF, Reason.DPOP_REPLAYED):
            return "invalid_dpop_proof"  # RFC 9449 §7.1
        if self.reason is Reason.USE_DPOP_NONCE:
            return "use_dpop_nonce"  # RFC 9449 §9
        return "invalid_token"

    @property
    def status(self) -> int:
        if self.reason is Reason.INSUFFICIENT_SCOPE:
            return 403
        if self.reason is Reason.STALE_STATE:
            return 503
        return 401

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self.reason]


class StepUpRequired(Denied):
    """RFC 9470 §3: the token is valid, but its authentication is too weak (``acr``) or
    too old (``auth_time``). ``acr_values`` and ``max_age`` are what the route requires,
    sent in the challenge so the client can ask the authorization server for exactly that.

    ``label`` (decision events, metrics) is ``acr_too_low`` or ``auth_too_old``, the
    gateway's names for the same refusals.
    """

    def __init__(self, *, too_old: bool, acr_values: str | None, max_age: int | None,
                 detail: str = "") -> None:
        super().__init__(Reason.INSUFFICIENT_USER_AUTHENTICATION, detail)
        self.too_old = too_old
        self.acr_values = acr_values
        self.max_age = max_age
        self.label = "auth_too_old" if too_old else "acr_too_low"

    @property
    def description(self) -> str:
        if self.too_old:
            return "More recent authentication is required."
        return "A different authentication level is required."

    @property
    def challenge_params(self) -> list[tuple[str, str]]:
        """The RFC 9470 §3 parameters after ``error_description``, in that order."""
        params = []
        if self.acr_values is not None:
            params.append(("acr_values", self.acr_values))
        if self.max_age is not None:
            params.append(("max_age", str(self.max_age)))
        return params


class KeysUnavailable(VerifierError):
    """No verification keys: the JWKS was never fetched successfully."""


class InvalidEvent(VerifierError):
    """A revocation event or snapshot does not have the documented shape."""


class InvalidJwks(VerifierError):
    """A JWKS document is not a JSON object with a ``keys`` list of usable keys."""


WRONG_TENANT: Final = "wrong_tenant"
NOT_OWNER: Final = "not_owner"
KEYS_UNAVAILABLE: Final = "keys_unavailable"
INTROSPECTION_UNAVAILABLE: Final = "introspection_unavailable"


class MissingToken(Denied):
    """The request carries no bearer token (RFC 6750 §3.1: answer without an error code)."""

    label = "missing_token"

    def __init__(self) -> None:
        super().__init__(Reason.MALFORMED, "no bearer token")

    @property
    def description(self) -> str:
        return "An access token is required."


class Forbidden(Denied):
    """A valid token that does not reach this resource: another tenant's or another
    subject's. Sent as RFC 6750 ``insufficient_scope`` (403)."""

    def __init__(self, label: str, detail: str = "") -> None:
        super().__init__(Reason.INSUFFICIENT_SCOPE, detail)
        self.label = label

    @property
    def description(self) -> str:
        return "The access token does not grant access to this resource."


class Unavailable(Denied):
    """The verifier cannot decide now (no keys, introspection unreachable): 503."""

    def __init__(self, label: str, detail: str = "") -> None:
        super().__init__(Reason.STALE_STATE, detail)
        self.label = label

    @property
    def description(self) -> str:
        return "The access token cannot be verified right now; try again later."


def label_of(denied: Denied) -> str:
    """The decision ``reason`` for a denial (metrics label, audit field)."""
    label = getattr(denied, "label", None)
    return label if isinstance(label, str) else denied.reason.value
