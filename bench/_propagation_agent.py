"""A verifier in its own process, driven over a pipe (used by bench/propagation.py and by
tests/system). It runs what a service embeds — ``RevocationFollower`` feeding a
``RevocationState`` and a ``Verifier`` with a ``JwksCache`` — and answers on stdout.

    python bench/_propagation_agent.py --issuer URL --audience AUD --source http|redis \
        --client-id ID --client-secret SECRET [--redis-url URL --stream NAME]
    python bench/_propagation_agent.py --source raw --redis-url URL --stream NAME

Requests, one JSON object per line on stdin; replies, one per line on stdout:

- ``{"op": "check", "id": 1, "token": "...", "max_staleness": 1.0}`` (max_staleness
  optional) → ``{"id": 1, "ok": true, "kid": "..."}`` or ``{"id": 1, "ok": false,
  "reason": "session_revoked"}``: a full ``Verifier.verify``.
- ``{"op": "watch", "id": 2, "token": "..."}`` → ``{"id": 2, "ok": true}`` once the token
  verified, then, when the local state first rejects it, ``{"event": "rejected", "id": 2,
  "at": <time.time() right after the batch was applied>, "event_at": <latest "at" of the
  batch's events: when the identity service recorded the revocation>, "reason": "..."}``.
- ``{"op": "status", "id": 3}`` → cursor, lag, reconnects, resyncs, JWKS fetches.
- ``{"op": "quit"}``.

At start the agent prints ``{"event": "ready", "cursor": n}`` once the follower is synced.
``--source raw`` is the baseline: a plain (synchronous) redis-py ``XREAD BLOCK`` loop that
prints ``{"event": "raw", "n": <field n>, "at": <time.time()>}`` per stream entry.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import orjson

from tessera.core.clock import SystemClock
from tessera.verifier import (
    Denied,
    HttpFeedSource,
    JwksCache,
    KeysUnavailable,
    RedisStreamSource,
    RevocationFollower,
    RevocationState,
    VerificationPolicy,
    VerifiedToken,
    Verifier,
)
from tessera.verifier._follower import EventSource


def emit(payload: Mapping[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(payload) + b"\n")
    sys.stdout.buffer.flush()


class Watches:
    """Tokens waiting to be rejected; checked right after every applied batch."""

    def __init__(self, state: RevocationState) -> None:
        self._state = state
        self._pending: dict[Any, VerifiedToken] = {}

    def add(self, ident: Any, token: VerifiedToken) -> None:
        self._pending[ident] = token
        self.sweep()

    def sweep(self, batch: list[Mapping[str, Any]] | None = None) -> None:
        if not self._pending:
            return
        now = time.time()
        stamped = max((e.get("at", 0.0) for e in batch), default=None) if batch else None
        done = []
        for ident, token in self._pending.items():
            try:
                self._state.check(token)
            except Denied as denied:
                emit({"event": "rejected", "id": ident, "at": now, "event_at": stamped,
                      "reason": str(denied.reason), "cursor": self._state.cursor})
                done.append(ident)
        for ident in done:
            del self._pending[ident]


class SweepingSource:
    """Wraps an event source; code after ``yield`` runs once the follower has applied
    the batch (it asks for the next one only then), which is when watches are swept."""

    def __init__(self, inner: EventSource, watches: Watches) -> None:
        self._inner = inner
        self._watches = watches

    async def snapshot(self) -> Mapping[str, Any]:
        return await self._inner.snapshot()

    async def follow(self, after: int) -> AsyncIterator[list[Mapping[str, Any]]]:
        async for batch in self._inner.follow(after):
            yield batch
            if batch:
                self._watches.sweep(batch)

    async def aclose(self) -> None:
        await self._inner.aclose()


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


async def serve(args: argparse.Namespace) -> None:
    clock = SystemClock()
    state = RevocationState(prune_granularity=5.0)
    watches = Watches(state)
    http = HttpFeedSource(args.issuer, client_id=args.client_id,
                          client_secret=args.client_secret,
                          heartbeat_timeout=max(2.0, args.heartbeat * 4))
    inner: EventSource
    if args.source == "redis":
        inner = RedisStreamSource(args.redis_url, snapshot_from=http, stream=args.stream,
                                  heartbeat=args.heartbeat)
    else:
        inner = http
    follower = RevocationFollower(state, SweepingSource(inner, watches), clock=clock,
                                  max_backoff=args.max_backoff)
    policy = VerificationPolicy(issuer=args.issuer, audience=args.audience)
    jwks = JwksCache(args.issuer, clock=clock, min_refetch_interval=args.jwks_min_refetch)
    verifier = Verifier(policy, jwks=jwks, clock=clock, state=state)
    follower.start()
    try:
        await asyncio.wait_for(follower.synced(), args.start_timeout)
        with contextlib.suppress(KeysUnavailable):
            await jwks.get()
        emit({"event": "ready", "cursor": state.cursor})
        async for line in _stdin_lines():
            request = orjson.loads(line)
            op = request.get("op")
            if op == "quit":
                break
            ident = request.get("id")
            if op == "status":
                emit({"id": ident, "cursor": state.cursor, "lag": state.lag(clock.now()),
                      "reconnects": follower.reconnects, "resyncs": follower.resyncs,
                      "jwks_fetches": jwks.fetches, "key_epoch": state.key_epoch})
                continue
            route = policy
            if request.get("max_staleness") is not None:
                route = dataclasses.replace(policy, max_staleness=request["max_staleness"])
            try:
                verified = await verifier.verify(request["token"], policy=route)
            except Denied as denied:
                emit({"id": ident, "ok": False, "reason": str(denied.reason),
                      "detail": denied.detail,
                      "cursor": state.cursor})
                continue
            except KeysUnavailable as exc:
                emit({"id": ident, "ok": False, "reason": "keys_unavailable",
                      "detail": str(exc)})
                continue
            if op == "watch":
                emit({"id": ident, "ok": True, "cursor": state.cursor})
                watches.add(ident, verified)
            else:
                emit({"id": ident, "ok": True, "kid": _kid(request["token"]),
                      "cursor": state.cursor})
    finally:
        await follower.aclose()
        await verifier.aclose()


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
                        help="Redis XREAD block time (s): how often the bus is heard from")
    parser.add_argument("--max-backoff", type=float, default=2.0)
    parser.add_argument("--jwks-min-refetch", type=float, default=10.0)
    parser.add_argument("--start-timeout", type=float, default=30.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="agent %(levelname)s %(name)s: %(message)s")
    if args.source == "raw":
        with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
            raw_reader(args)
        return
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
