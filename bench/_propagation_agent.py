"""A verifier in its own process, driven over a pipe (used by bench/propagation.py,
bench/chaos.py and tests/system). It runs what a service embeds — a ``VerifierService``
(revocation follower, freshness rule, JWKS cache, applied-seq reports) — and answers on
stdout.

    python bench/_propagation_agent.py --issuer URL --audience AUD --source http|redis \
        --client-id ID --client-secret SECRET [--redis-url URL --stream NAME] \
        [--max-staleness S] [--strict-max-staleness S] [--no-wait] [--verifier-id ID]
    python bench/_propagation_agent.py --source raw --redis-url URL --stream NAME

Requests, one JSON object per line on stdin; replies, one per line on stdout:

- ``{"op": "check", "id": 1, "token": "...", "strict": false, "accept_stale": false}``
  → ``{"id": 1, "ok": true, "kid": "..."}`` or ``{"id": 1, "ok": false, "reason":
  "session_revoked", "status": 401}``: ``VerifierService.check`` on an ordinary route
  (``max_staleness``), a strict one, or one that opted in to ``accept_stale``.
- ``{"op": "watch", "id": 2, "token": "..."}`` → ``{"id": 2, "ok": true}`` once the token
  verified, then, when the local state first rejects it, ``{"event": "rejected", "id": 2,
  "at": <time.time() right after the batch was applied>, "event_at": <latest "at" of the
  batch's events: when the identity service recorded the revocation>, "timing": <the
  stamps the bus carried with that event (relay_read, bus_added, received) or null>,
  "reason": "..."}``.
- ``{"op": "status", "id": 3}`` → cursor, lag, loaded, reconnects, resyncs, epoch
  changes, JWKS fetches, the last reported cursor.
- ``{"op": "quit"}``.

The agent runs on uvloop when it is installed, as a service served by ``uvicorn[standard]``
does (the verifier runs on its host's loop).

At start the agent prints ``{"event": "ready", "cursor": n}`` once the follower is synced
(at once with ``--no-wait``: a verifier starting while the identity service is down).
``--source raw`` is the baseline: a plain (synchronous) redis-py ``XREAD BLOCK`` loop that
prints ``{"event": "raw", "n": <field n>, "at": <time.time()>}`` per stream entry.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import sys
import time
from collections.abc import AsyncIterator, Coroutine, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import orjson
from prometheus_client import CollectorRegistry

from tessera.core.clock import SystemClock
from tessera.verifier import Denied, VerifiedToken
from tessera.verifier.revocation import RevocationState
from tessera.verifier.service import VerifierService
from tessera.verifier.settings import VerifierSettings


def emit(payload: Mapping[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(payload) + b"\n")
    sys.stdout.buffer.flush()


class Watches:
    """Tokens waiting to be rejected; checked right after every applied batch. Indexed by
    the keys a revocation event names (jti, sid, user, client, tenant), so a batch checks
    the tokens its events name, not every watch (the harness must not cost the verifier
    CPU it measures); a batch naming no watched key checks them all."""

    def __init__(self, state: RevocationState) -> None:
        self._state = state
        self._pending: dict[Any, VerifiedToken] = {}
        self._by_key: dict[str, set[Any]] = {}

    @staticmethod
    def _keys(token: VerifiedToken) -> set[str]:
        return {k for k in (token.jti, token.sid, token.sub, token.client_id, token.tid) if k}

    def add(self, ident: Any, token: VerifiedToken) -> None:
        self._pending[ident] = token
        for key in self._keys(token):
            self._by_key.setdefault(key, set()).add(ident)
        self.sweep([], {ident})

    def sweep(self, applied_at: list[tuple[float, Any]], named: set[Any] | None) -> None:
        """Check the watches ``named`` (None: every one)."""
        if not self._pending:
            return
        now = time.time()
        stamped = max((at for at, _ in applied_at), default=None)
        # the bus stamps the last event of each read: the batch's latest stamps
        timing = next((t for _, t in reversed(applied_at) if t is not None), None)
        idents = list(self._pending) if named is None else \
            [i for i in named if i in self._pending]
        for ident in idents:
            token = self._pending[ident]
            try:
                self._state.check(token)
            except Denied as denied:
                emit({"event": "rejected", "id": ident, "at": now, "event_at": stamped,
                      "timing": timing, "reason": str(denied.reason),
                      "cursor": self._state.cursor})
                del self._pending[ident]
                for key in self._keys(token):
                    self._by_key.get(key, set()).discard(ident)

    def named_by(self, keys: list[str]) -> set[Any] | None:
        """The watches these event keys name; None when one names none (check all)."""
        named: set[Any] = set()
        for key in keys:
            found = self._by_key.get(key)
            if not found:
                return None
            named |= found
        return named


def hook_watches(service: VerifierService, watches: Watches) -> None:
    """Sweep the watches after each applied batch, around the service's own hooks."""
    follower = service.follower
    assert follower is not None
    applied_at: list[tuple[float, Any]] = []
    keys: list[str] = []
    swept = [service.state.cursor]  # the cursor at the last sweep
    metrics, progress = follower.on_applied, follower.on_progress

    def applied(event: Mapping[str, Any], now: float) -> None:
        if metrics is not None:
            metrics(event, now)
        at = event.get("at")
        if isinstance(at, int | float):
            applied_at.append((float(at), event.get("timing")))
        keys.append(str(event.get("key")))

    def progressed() -> None:
        if progress is not None:
            progress()
        if keys:
            watches.sweep(applied_at, watches.named_by(keys))
        elif service.state.cursor != swept[0]:  # moved without events: a snapshot reload
            watches.sweep(applied_at, None)
        swept[0] = service.state.cursor
        applied_at.clear()
        keys.clear()

    follower.on_applied, follower.on_progress = applied, progressed


async def _stdin_lines() -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        if line.strip():
            yield line


def build_service(args: argparse.Namespace) -> VerifierService:
    values: dict[str, Any] = {
        "issuer": args.issuer, "audience": args.audience, "source": args.source,
        "client_id": args.client_id, "client_secret": args.client_secret,
        "max_staleness": args.max_staleness,
        "strict_max_staleness": args.strict_max_staleness,
        "feed_heartbeat_timeout": max(2.0, args.heartbeat * 4), "startup_wait": 0,
        "jwks_min_refetch": args.jwks_min_refetch, "report_applied": not args.no_report,
        "report_interval": args.report_interval, "service_name": args.service_name}
    if args.verifier_id:
        values["verifier_id"] = args.verifier_id
    if args.source == "redis":
        values |= {"redis_url": args.redis_url, "redis_stream": args.stream}
    service = VerifierService(VerifierSettings(**values), clock=SystemClock(),
                              registry=CollectorRegistry())
    assert service.follower is not None
    service.follower.max_backoff = args.max_backoff
    return service


async def serve(args: argparse.Namespace) -> None:
    service = build_service(args)
    watches = Watches(service.state)
    hook_watches(service, watches)
    await service.start(wait=0)
    try:
        if not args.no_wait:
            assert service.follower is not None
            await asyncio.wait_for(service.follower.synced(), args.start_timeout)
        emit({"event": "ready", "cursor": service.state.cursor})
        async for line in _stdin_lines():
            request = orjson.loads(line)
            op = request.get("op")
            if op == "quit":
                break
            ident = request.get("id")
            if op == "status":
                emit(status(service, ident))
                continue
            try:
                if op == "watch":
                    verified = await service.verify_locally(request["token"])
                else:
                    verified = await service.check(
                        request["token"], strict=bool(request.get("strict")),
                        accept_stale=bool(request.get("accept_stale")))
            except Denied as denied:
                emit({"id": ident, "ok": False, "reason": _label(denied),
                      "status": denied.status, "detail": denied.detail,
                      "cursor": service.state.cursor, "lag": _finite(service.lag())})
                continue
            if op == "watch":
                emit({"id": ident, "ok": True, "cursor": service.state.cursor})
                watches.add(ident, verified)
            else:
                emit({"id": ident, "ok": True, "kid": _kid(request["token"]),
                      "cursor": service.state.cursor, "lag": _finite(service.lag())})
    finally:
        await service.aclose()


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else round(value, 4)


def _label(denied: Denied) -> str:
    label = getattr(denied, "label", None)
    return label if isinstance(label, str) else str(denied.reason)


def status(service: VerifierService, ident: Any) -> dict[str, Any]:
    follower, state = service.follower, service.state
    assert follower is not None
    return {"id": ident, "cursor": state.cursor, "lag": _finite(service.lag()),
            "loaded": state.loaded, "phase": follower.phase.value,
            "reconnects": follower.reconnects, "resyncs": follower.resyncs,
            "epoch_changes": follower.epoch_changes, "jwks_fetches": service.jwks.fetches,
            "key_epoch": state.key_epoch,
            "reported": service.reporter.reported if service.reporter else None}


def _kid(token: str) -> str | None:
    import base64

    head = token.split(".", 1)[0]
    header = orjson.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    kid = header.get("kid")
    return kid if isinstance(kid, str) else None


def raw_reader(args: argparse.Namespace) -> None:
    """The baseline: plain redis-py, blocking XREAD, nothing else."""
    import redis

    client = redis.Redis.from_url(args.redis_url)
    last = "0-0"  # a fresh stream of this run: nothing is missed however late we start
    emit({"event": "ready", "cursor": 0})
    while True:
        reply: Any = client.xread({args.stream: last}, block=1000, count=100)
        now = time.time()
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                last = entry_id
                if fields.get(b"quit"):
                    return
                emit({"event": "raw", "n": int(fields[b"n"]), "at": now})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--issuer", default="")
    parser.add_argument("--audience", default="")
    parser.add_argument("--source", choices=("http", "redis", "raw"), required=True)
    parser.add_argument("--client-id", default="")
    parser.add_argument("--client-secret", default="")
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--stream", default="tessera:revocations")
    parser.add_argument("--heartbeat", type=float, default=1.0,
                        help="SSE feed: reconnect after 4x this without a frame")
    parser.add_argument("--max-backoff", type=float, default=2.0)
    parser.add_argument("--jwks-min-refetch", type=float, default=10.0)
    parser.add_argument("--start-timeout", type=float, default=30.0)
    parser.add_argument("--max-staleness", type=float, default=30.0,
                        help="bound of ordinary routes (s)")
    parser.add_argument("--strict-max-staleness", type=float, default=10.0,
                        help="bound of strict routes (s)")
    parser.add_argument("--no-wait", action="store_true",
                        help="ready at once, without waiting for the first snapshot")
    parser.add_argument("--no-report", action="store_true",
                        help="do not report the applied seq to the identity service")
    parser.add_argument("--report-interval", type=float, default=5.0)
    parser.add_argument("--verifier-id", default=None)
    parser.add_argument("--service-name", default="agent")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="agent %(levelname)s %(name)s: %(message)s")
    if args.source == "raw":
        with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
            raw_reader(args)
        return
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        run(serve(args))


def run(main: Coroutine[Any, Any, None]) -> None:
    """On uvloop where it is installed, as a service under ``uvicorn[standard]`` runs."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


if __name__ == "__main__":
    main()
