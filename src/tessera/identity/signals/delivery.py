"""Delivery: the stored tokens → receivers, at least once, never blocking a request.

A pusher claims due deliveries (a lease, so a crashed process's claims come back after
it), posts each with a timeout, and settles it: delivered; pending again after an
exponential backoff (timeouts, connection errors, 408, 429, 5xx); or dead-lettered
(other 4xx answers, the attempt bound, the token's expiry, a receiver that is gone or
refused). The same stored token is sent every time. Each outcome is an audit event and
a metric per receiver.

Receivers are checked at every attempt (``core.signals.check_receiver``): https only
(loopback http while the issuer is loopback http); the host is resolved here and every
address checked (private, link-local, reserved, loopback refused unless allowed), then
the connection goes to the checked address itself (no second lookup an attacker's DNS
could answer differently), with the original name as ``Host`` and TLS server name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from tessera.core.clock import Clock
from tessera.core.signals import Delivery, ReceiverRefused, address_refused, backoff, check_receiver
from tessera.core.worker import BackgroundLoop
from tessera.keys import Sealer
from tessera.observability import events
from tessera.observability.audit import AuditLog
from tessera.settings import SignalSettings
from tessera.store.ports import AuditRecord, Store, StoreError, UnitOfWork

AUTHORIZATION_CONTEXT = "ssf-push-authorization"

__all__ = ["AUTHORIZATION_CONTEXT", "Outcome", "Pusher", "Resolver", "system_resolver"]

_log = logging.getLogger("tessera.signals")

Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str
    """``delivered``, ``retry`` or ``dead``."""
    detail: str | None = None
    http_status: int | None = None


_RETRY_STATUSES = frozenset({408, 425, 429})


class Pusher(BackgroundLoop):
    def __init__(self, store: Store, clock: Clock, audit: AuditLog, *, issuer: str,
                 settings: SignalSettings, sealer: Sealer,
                 observe: Callable[[Delivery, Outcome, float], None] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None,
                 resolver: Resolver | None = None) -> None:
        self._store = store
        self._clock = clock
        self._audit = audit
        self._issuer = issuer
        self._settings = settings
        self._sealer = sealer
        self._observe = observe
        self._resolve = resolver or system_resolver
        self._http = httpx.AsyncClient(transport=transport, timeout=settings.timeout,
                                       follow_redirects=False, trust_env=False)
        super().__init__("signal delivery", _log)

    async def aclose(self) -> None:
        await super().aclose()
        await self._http.aclose()

    async def step(self) -> bool:
        try:
            return await self.push_once() > 0
        except StoreError as exc:
            _log.warning("signal delivery paused: %s", exc)
            return False

    def idle_interval(self) -> float:
        return self._settings.poll_interval

    async def push_once(self) -> int:
        """Claim and attempt the due deliveries; returns how many were attempted."""
        now = self._clock.now()
        lease = self._settings.timeout * 2 + 2  # an attempt ends by its deadline
        async with self._store.unit_of_work(read_only=True) as uow:  # idle: no write lock
            if not await uow.signals.has_due(now=now):
                return 0
        async with self._store.unit_of_work() as uow:
            claimed = await uow.signals.claim(now=now, lease=lease,
                                              limit=self._settings.concurrency)
        if not claimed:
            return 0
        outcomes = await asyncio.gather(*(self._attempt(d) for d in claimed))
        records: list[AuditRecord] = []
        async with self._store.unit_of_work() as uow:
            for delivery, (outcome, seconds) in zip(claimed, outcomes, strict=True):
                records.append(await self._settle(uow, delivery, outcome))
                if self._observe is not None:
                    self._observe(delivery, outcome, seconds)
            await uow.audit.append(records)
        self._audit.emit(records)
        return len(claimed)

    async def _settle(self, uow: UnitOfWork, d: Delivery, outcome: Outcome) -> AuditRecord:
        assert d.id is not None
        now = self._clock.now()
        status = outcome.status
        if status == "retry" and (d.attempts >= self._settings.max_attempts
                                  or now >= d.expires_at):
            status = "dead"
        fields = {"channel": d.channel, "jti": d.jti, "signal": d.event,
                  "attempts": d.attempts, "tenant_id": d.tenant_id, "user_id": d.user_id,
                  "http_status": outcome.http_status, "detail": outcome.detail}
        fields["client_id" if d.channel == "logout" else "stream"] = d.target
        if status == "delivered":
            await uow.signals.settle(d.id, status="delivered", at=now)
            return self._audit.make(events.SIGNAL_DELIVERED,
                                    seconds=round(now - d.created_at, 3), **fields)
        if status == "dead":
            await uow.signals.settle(d.id, status="dead", at=now, error=outcome.detail)
            return self._audit.make(events.SIGNAL_DEAD_LETTERED, **fields)
        wait = backoff(d.attempts, base=self._settings.backoff_base,
                       cap=self._settings.backoff_cap)
        await uow.signals.settle(d.id, status="pending", at=now, next_at=now + wait,
                                 error=outcome.detail)
        return self._audit.make(events.SIGNAL_FAILED, retry_in=wait, **fields)

    async def _attempt(self, d: Delivery) -> tuple[Outcome, float]:
        started = time.perf_counter()
        try:
            # an overall deadline: httpx's timeouts are per read, a trickling receiver
            # could otherwise hold a worker for long
            async with asyncio.timeout(self._settings.timeout):
                outcome = await self._send(d)
        except ReceiverRefused as exc:
            outcome = Outcome("dead", f"receiver refused: {exc}")
        except (httpx.TimeoutException, TimeoutError):
            outcome = Outcome("retry", "timeout")
        except (httpx.HTTPError, OSError) as exc:
            outcome = Outcome("retry", f"connection failed: {type(exc).__name__}")
        return outcome, time.perf_counter() - started

    async def _send(self, d: Delivery) -> Outcome:
        if self._clock.now() >= d.expires_at:
            return Outcome("dead", "expired before delivery")
        async with self._store.unit_of_work(read_only=True) as uow:
            if d.channel == "logout":
                target = (await uow.signals.logout_targets([d.target])).get(d.target)
                if target is None:
                    return Outcome("dead", "the client no longer has a logout URI")
                url, headers = target.uri, {"content-type": "application/x-www-form-urlencoded"}
                body = httpx.QueryParams({"logout_token": d.token}).__str__().encode()
            else:
                stream = await uow.signals.get_stream(d.target)
                if stream is None or stream.status == "disabled":
                    return Outcome("dead", "the stream is gone or disabled")
                if stream.status == "paused":
                    return Outcome("retry", "stream paused")
                if stream.endpoint_url is None:
                    return Outcome("dead", "the stream has no push endpoint")
                url = stream.endpoint_url
                headers = {"content-type": "application/secevent+jwt",
                           "accept": "application/json"}
                if stream.sealed_authorization:
                    headers["authorization"] = self._sealer.open(
                        stream.sealed_authorization, context=AUTHORIZATION_CONTEXT).decode()
                body = d.token.encode()
        response = await self._post(url, headers, body)
        if 200 <= response.status_code < 300:
            return Outcome("delivered", None, response.status_code)
        detail = f"HTTP {response.status_code}"
        if response.status_code >= 500 or response.status_code in _RETRY_STATUSES:
            return Outcome("retry", detail, response.status_code)
        with contextlib.suppress(ValueError):
            answer = response.json()
            if isinstance(answer, dict):
                err = answer.get("err") or answer.get("error")
                if err:
                    detail += f" {str(err)[:100]}"
        return Outcome("dead", detail, response.status_code)

    async def _post(self, url: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        scheme, host, port = check_receiver(url, issuer=self._issuer)
        addresses = await self._resolve(host, port)
        if not addresses:
            raise ReceiverRefused("the host does not resolve")
        allowed = tuple(self._settings.allowed_networks)
        for address in addresses:
            reason = address_refused(address, issuer=self._issuer, allowed=allowed)
            if reason is not None:
                raise ReceiverRefused(f"{host} resolves to a {reason}")
        target = httpx.URL(url)
        pinned = target.copy_with(host=addresses[0])
        headers = {**headers, "host": target.netloc.decode("ascii")}
        extensions = {"sni_hostname": host} if scheme == "https" else {}
        request = self._http.build_request("POST", pinned, headers=headers, content=body,
                                           extensions=extensions)
        return await self._http.send(request)
