"""Shared Signals poll delivery (RFC 8936): Tessera polls the transmitter of each provider
registered with ``--ssf-poll-url`` for CAEP events, with the same effect as push.

Each round: a service token (client credentials at the provider), then ``POST`` to the
poll endpoint with ``returnImmediately``, acknowledging (``ack``) the SETs applied and
reporting (``setErrs``) those refused in the previous answer (§2.4), until
``moreAvailable`` is false; a final request acknowledges the last batch. A SET seen
before (its ``jti`` is remembered, e.g. applied by another worker) is acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tessera.core.federation import IdentityProvider
from tessera.identity.federation.service import Federation, FederationError
from tessera.identity.federation.upstream import UpstreamError, UpstreamRefused
from tessera.store.ports import StoreError

__all__ = ["SsfPoller"]

_log = logging.getLogger("tessera.federation")
MAX_EVENTS = 50
MAX_ROUNDS = 20


class SsfPoller:
    def __init__(self, federation: Federation, *, interval: float,
                 on_failure: Any = None) -> None:
        self._federation = federation
        self._interval = interval
        self._on_failure = on_failure

    async def poll_once(self, provider: IdentityProvider) -> int:
        """One poll of ``provider``'s transmitter; returns the SETs applied."""
        assert provider.ssf_poll_url is not None
        client = self._federation.client(provider)
        token = await client.service_token()
        acks: list[str] = []
        errors: dict[str, dict[str, str]] = {}
        applied = 0
        for _ in range(MAX_ROUNDS):
            answer = await client.post_json(provider.ssf_poll_url, {
                "maxEvents": MAX_EVENTS, "returnImmediately": True, "ack": acks,
                "setErrs": errors}, bearer=token)
            sets = answer.get("sets", {})
            if not isinstance(sets, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in sets.items()):
                raise UpstreamRefused("the poll answer's sets is not an object of SETs")
            acks, errors = [], {}
            for jti, value in sets.items():
                try:
                    await self._federation.security_event(provider, value)
                except FederationError as exc:
                    if "replay" in exc.reason:
                        acks.append(jti)
                        continue
                    _log.warning("polled SET %s from %s refused: %s", jti[:64], provider.name,
                                 exc.reason)
                    errors[jti] = {"err": "invalid_request", "description": exc.reason}
                    continue
                applied += 1
                acks.append(jti)
            if answer.get("moreAvailable") is not True:
                break
        if acks or errors:
            await client.post_json(provider.ssf_poll_url, {
                "maxEvents": 0, "returnImmediately": True, "ack": acks, "setErrs": errors},
                bearer=token)
        return applied

    async def run(self) -> None:
        """Poll every polled provider, every ``interval`` seconds, until cancelled."""
        while True:
            try:
                providers = await self._federation.polled_providers()
            except StoreError as exc:
                _log.warning("SSF poll: store unavailable: %s", exc)
                providers = []
            for provider in providers:
                try:
                    await self.poll_once(provider)
                except UpstreamError as exc:
                    _log.warning("SSF poll of %s failed: %s", provider.name, exc.reason)
                    if self._on_failure is not None:
                        self._on_failure(exc)
                except StoreError as exc:
                    _log.warning("SSF poll of %s: store unavailable: %s", provider.name, exc)
            await asyncio.sleep(self._interval)
