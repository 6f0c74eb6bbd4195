"""Token introspection client (RFC 7662 §2): the strict-route fallback while stale.

RFC 7662: https://www.rfc-editor.org/rfc/rfc7662

``POST {issuer}/introspect`` with ``token`` and ``token_type_hint=access_token``,
authenticated with the service's client credentials (``client_secret_basic``, RFC 6749
§2.3.1), with a bounded timeout. ``active: true`` returns the claims; anything else the
issuer says is "inactive"; a transport error, a non-200 answer or a body that is not a
JSON object is ``Unavailable`` (the caller denies with 503, fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import httpx
import orjson

from tessera.verifier.errors import INTROSPECTION_UNAVAILABLE, Unavailable

__all__ = ["IntrospectionClient"]

_MAX_BODY: Final = 64 * 1024
_NOT_CLAIMS: Final = frozenset({"active", "token_type"})


class IntrospectionClient:
    def __init__(self, endpoint: str, *, client_id: str, client_secret: str,
                 transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = 2.0) -> None:
        self.endpoint = endpoint
        self._client = httpx.AsyncClient(transport=transport, auth=(client_id, client_secret),
                                         timeout=timeout)

    async def introspect(self, token: str) -> Mapping[str, Any] | None:
        """The token's claims if the issuer says it is active, else ``None``.

        Raises ``Unavailable`` when the issuer cannot be asked or answers nonsense.
        """
        try:
            response = await self._client.post(
                self.endpoint, data={"token": token, "token_type_hint": "access_token"},
                headers={"accept": "application/json"})
        except httpx.HTTPError as exc:
            raise Unavailable(INTROSPECTION_UNAVAILABLE, type(exc).__name__) from None
        if response.status_code != 200:
            raise Unavailable(INTROSPECTION_UNAVAILABLE, f"HTTP {response.status_code}")
        if len(response.content) > _MAX_BODY:
            raise Unavailable(INTROSPECTION_UNAVAILABLE, "response too large")
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise Unavailable(INTROSPECTION_UNAVAILABLE, "response is not JSON") from None
        if not isinstance(body, dict):
            raise Unavailable(INTROSPECTION_UNAVAILABLE, "response is not an object")
        if body.get("active") is not True:
            return None
        return {k: v for k, v in body.items() if k not in _NOT_CLAIMS}

    async def aclose(self) -> None:
        await self._client.aclose()
