"""Redis Streams bus (production): durable, shared by every process and host.

Keys, for a stream named ``S``:

- ``S``: one entry per event, ID ``<seq>-0`` (publishing is idempotent: Redis refuses an ID
  at or below the top), fields ``e`` (the event) and ``p`` (the seq of the outbox event
  before it). A follower reading an entry whose ``p`` is past its cursor has missed
  events and gets ``BusGap``. Telemetry fields split propagation by stage: ``w`` (when a
  commit's notification woke the relay, if one did), ``r`` (when the relay read the event
  from the outbox; both the relay's clock) and ``x`` (Redis's own
  ``TIME`` when the script added it: the entries become readable as the script ends;
  left out where the ACL does not allow ``TIME``, docs/deploy.md).
  Followers that do not know them ignore them; the follower's read stamps ``received``
  and passes the stamps of the last entry of each read on (``BusBatch.timing``; the
  ``"timing"`` of that event in ``follow_wire``: one sample per ``XREAD``, so a catch-up
  of a million events costs nothing extra).
- ``S:epoch``: this incarnation of the stream, a random string. It disappears with the
  stream when Redis restarts empty (or fails over to a replica without it).
- ``S:watermarks``: the relay's watermarks (``head``, ``at``, ``epoch``), the last 16,
  written on the relay's idle heartbeat. A batch the relay read to the end
  (``OutboxBatch.complete_at``) carries its watermark on its last entry instead (fields
  ``wa``: at, ``we``: epoch; head: that entry's seq), so a follower gets the events and
  the watermark they prove in one read and wakes once per revocation, not twice (a
  blocked ``XREAD`` on two keys is answered with the first key that got data).

Every write runs as one Lua script that first checks the epoch and that the stream's top
is not below what the write builds on (``p`` of the first event, a watermark's head): a
relay that has not noticed a restart or a rewound failover cannot write into the new
stream. It gets ``BusRewound``, opens (or adopts) the new epoch and republishes from the
outbox, so the stream stays gap-free from its first entry on.

A follower reads the event stream and the watermark stream in one ``XREAD``. A watermark
whose head is past the cursor while the stream has nothing more to give means events were
lost or trimmed: ``BusGap`` (the follower fetches them from the identity service).

Connections use a socket timeout (``socket_timeout``, longer than the blocking read), so a
silently dead connection is noticed and retried instead of blocking forever. A follower
reads on a connection of its own (``_Reader``), opened with the client's settings: a
blocking read would hold a pooled one anyway, and owning it skips the pool and the task
redis-py starts per command to time its send (``asyncio.wait_for`` before Python 3.12),
most of the client's CPU per read. The read keeps its deadline (``asyncio.timeout``); one
that expires closes the connection, as the client's own timeout does. For the same reason
a publisher (``from_url``) runs its scripts through a client of its own without a socket
timeout, each call bounded by ``asyncio.timeout`` instead: the task per send cost every
publish a turn of the event loop (relay read → XADD p50 0.38 → 0.19 ms at 16 verifiers
here); a cancelled call closes its connection (redis-py disconnects on any error while
sending or reading).
"""

from __future__ import annotations

from tessera import _extras

_extras.require("redis", "the Redis event bus")  # one clear line without the extra
# ruff: noqa: E402 (the check above runs before the imports that would fail)

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from typing import Any, Final

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tessera.bus.ports import (
    BusBatch,
    BusGap,
    BusRewound,
    BusUnavailable,
    OutboxBatch,
    WireBatch,
    event_from_wire,
    event_to_wire,
)
from tessera.core.freshness import Watermark, WatermarkError
from tessera.core.revocation import RevocationEvent

__all__ = ["DEFAULT_STREAM", "RedisStreamsBus"]

_log = logging.getLogger("tessera.bus")

DEFAULT_STREAM = "tessera:revocations"
WATERMARKS_KEPT: Final = 16
CLOSE_TIMEOUT: Final = 2.0
"""Seconds ``RedisStreamsBus.aclose`` waits for the client to close."""
_COUNT: Final = 1000

_TOP = """
local top = 0
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then top = tonumber(string.match(last[1][1], '^(%d+)')) end
"""

_PUBLISH = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return redis.error_reply('TESSERA_EPOCH') end
""" + _TOP + """
local after = tonumber(ARGV[2])
if after >= 0 and top < after then
  return redis.error_reply('TESSERA_REWOUND ' .. top)
end
local stamps = {}
local now = redis.pcall('TIME')  -- an ACL without +time: no 'x' stamp, publish all the same
if type(now) == 'table' and not now.err then
  stamps = {'x', now[1] .. '.' .. string.format('%06d', tonumber(now[2]))}
end
if ARGV[4] ~= '' then table.insert(stamps, 'r'); table.insert(stamps, ARGV[4]) end
if ARGV[5] ~= '' then table.insert(stamps, 'w'); table.insert(stamps, ARGV[5]) end
local added, prev, marked = 0, ARGV[2], false
for i = 8, #ARGV, 2 do
  local seq = tonumber(ARGV[i])
  if seq > top then
    local fields = {'e', ARGV[i + 1]}
    if after >= 0 then table.insert(fields, 'p'); table.insert(fields, prev) end
    for _, v in ipairs(stamps) do table.insert(fields, v) end
    if i + 1 == #ARGV and ARGV[6] ~= '' then  -- the batch's watermark, on its last entry
      table.insert(fields, 'wa'); table.insert(fields, ARGV[6])
      table.insert(fields, 'we'); table.insert(fields, ARGV[1])
      marked = true
    end
    local reply = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], ARGV[i] .. '-0',
                              unpack(fields))
    if type(reply) ~= 'table' or not reply.err then added = added + 1 end
    top = seq
  end
  prev = ARGV[i]
end
if ARGV[6] ~= '' and not marked then  -- its last entry was already there: mark apart
  redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[7], '*', 'head', prev, 'at', ARGV[6],
             'epoch', ARGV[1])
end
return added
"""

_MARK = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return redis.error_reply('TESSERA_EPOCH') end
""" + _TOP + """
if top < tonumber(ARGV[2]) then return redis.error_reply('TESSERA_REWOUND ' .. top) end
return redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[4], '*',
                  'head', ARGV[2], 'at', ARGV[3], 'epoch', ARGV[1])
"""

_TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError)


def _seq_of(entry_id: bytes | str) -> int:
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(raw.split("-", 1)[0])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisStreamsBus:
    def __init__(self, client: aioredis.Redis, *, stream: str = DEFAULT_STREAM,
                 maxlen: int = 1_000_000, socket_timeout: float | None = None,
                 writer: aioredis.Redis | None = None) -> None:
        """``writer``: a client without a socket timeout for the write scripts, each call
        then bounded by ``socket_timeout`` (module docstring); default ``client``."""
        self._redis = client
        self._writer = writer if writer is not None else client
        self._stream = stream
        self._epoch_key = f"{stream}:epoch"
        self._watermarks = f"{stream}:watermarks"
        self._maxlen = maxlen
        self._socket_timeout = socket_timeout
        self._write_deadline = socket_timeout if writer is not None else None
        self._epoch: str | None = None
        self._publish = self._writer.register_script(_PUBLISH)
        self._mark = self._writer.register_script(_MARK)

    @classmethod
    def from_url(cls, url: str, *, socket_timeout: float = 5.0, **kwargs: Any
                 ) -> RedisStreamsBus:
        """A bus on ``url`` (any form ``tessera.bus.redis_url`` reads: TLS, ACL user,
        Sentinel, Cluster). On a Cluster the stream name must carry a hash tag
        (``{tessera}:revocations``): its scripts and reads touch ``S``, ``S:epoch`` and
        ``S:watermarks`` together, which must live in one slot."""
        from tessera.bus.redis_url import RedisUrlError, connect, hash_slot_tag, parse

        stream = str(kwargs.get("stream", DEFAULT_STREAM))
        if parse(url).mode == "cluster" and hash_slot_tag(stream) is None:
            raise RedisUrlError(
                f"bus.stream {stream!r} has no hash tag: on a Redis Cluster name it like "
                "'{tessera}:revocations' (and the verifiers' redis_stream the same) so the "
                "stream and its epoch and watermark keys share one slot")
        client = connect(url, socket_connect_timeout=2, socket_timeout=socket_timeout,
                         health_check_interval=10)
        writer = connect(url, socket_connect_timeout=2, socket_timeout=None,
                         health_check_interval=10)
        return cls(client, socket_timeout=socket_timeout, writer=writer, **kwargs)

    @property
    def epoch(self) -> str | None:
        """The epoch this publisher writes under (``None`` until its first write)."""
        return self._epoch

    async def _open_epoch(self) -> str:
        """Adopt the stream's epoch, creating one if there is none (a new or lost stream)."""
        created = await self._redis.set(self._epoch_key, secrets.token_hex(8), nx=True)
        value = await self._redis.get(self._epoch_key)
        if value is None:
            raise BusUnavailable("redis: the epoch vanished while being opened")
        self._epoch = _text(value)
        if created:
            _log.warning("revocation stream %s: new epoch %s (new stream, or Redis lost it)",
                         self._stream, self._epoch)
        return self._epoch

    async def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            epoch = self._epoch or await self._open_epoch()
            if self._write_deadline is None:
                return await script(keys=keys, args=[epoch, *args])
            async with asyncio.timeout(self._write_deadline):
                return await script(keys=keys, args=[epoch, *args])
        except TimeoutError:
            raise BusUnavailable(f"redis: no reply in {self._write_deadline}s") from None
        except ResponseError as exc:
            message = str(exc)
            if message.startswith("TESSERA_EPOCH"):
                self._epoch = None
                raise BusRewound(f"{self._stream}: the epoch changed") from None
            if message.startswith("TESSERA_REWOUND"):
                raise BusRewound(f"{self._stream}: top went back to "
                                 f"{message.split()[-1]}") from None
            raise BusUnavailable(f"redis: {message}") from None
        except _TRANSIENT as exc:
            raise BusUnavailable(f"redis: {exc}") from None
        except RedisError as exc:
            raise BusUnavailable(f"redis: {exc}") from None

    async def publish(self, events: Sequence[RevocationEvent]) -> int:
        if not events:
            return 0
        after = events.after if isinstance(events, OutboxBatch) else -1
        outbox = events if isinstance(events, OutboxBatch) else None
        stamps = (outbox.read_at, outbox.woken_at, outbox.complete_at) \
            if outbox is not None else (None, None, None)
        args: list[Any] = [after, self._maxlen,
                           *("" if stamp is None else repr(stamp) for stamp in stamps),
                           WATERMARKS_KEPT]
        for event in events:
            assert event.seq is not None, "events on the bus carry their outbox seq"
            args += [event.seq, orjson.dumps(event_to_wire(event))]
        return int(await self._run(self._publish,
                                   [self._stream, self._epoch_key, self._watermarks], args))

    async def mark(self, head: int, at: float) -> Watermark:
        await self._run(self._mark, [self._stream, self._epoch_key, self._watermarks],
                        [head, repr(at), WATERMARKS_KEPT])
        assert self._epoch is not None
        return Watermark(head, at, self._epoch)

    async def last_seq(self) -> int:
        try:
            entries: Any = await self._redis.xrevrange(self._stream, count=1)
            if entries:
                return _seq_of(entries[0][0])
            info = await self._stream_info()
        except _TRANSIENT as exc:
            raise BusUnavailable(f"redis: {exc}") from None
        last: bytes | str | None = info.get("last-generated-id") if info else None
        return _seq_of(last) if last is not None else 0

    async def _stream_info(self) -> dict[str, Any] | None:
        try:
            info: dict[str, Any] = await self._redis.xinfo_stream(self._stream)
        except ResponseError:
            return None  # no such stream yet
        return {_text(k): v for k, v in info.items()}

    async def _check_gap(self, cursor: int) -> None:
        """Trimmed entries all precede the first entry still held. Sequence numbers may
        skip (a rolled-back transaction burns one), so a cursor just below the first entry
        is fine; anything further back may have missed trimmed events. Erring towards a
        gap costs the follower a range fetch, never a missed revocation."""
        info = await self._stream_info()
        if not info:
            return
        trimmed = int(info.get("entries-added", 0)) > int(info.get("length", 0))
        first = info.get("first-entry")
        if trimmed and first and cursor < _seq_of(first[0]) - 1:
            raise BusGap(f"events after {cursor} were trimmed from {self._stream}")
        if first is None and trimmed and cursor < await self.last_seq():
            raise BusGap(f"events after {cursor} were trimmed from {self._stream}")

    def _reader(self) -> _Reader:
        pool = getattr(self._redis, "connection_pool", None)
        if pool is None:  # Redis Cluster: the client routes each read to the slot's node
            return _Reader(self._redis, None, self._socket_timeout)
        kwargs = {**pool.connection_kwargs, "socket_timeout": None}
        return _Reader(self._redis, pool.connection_class(**kwargs), self._socket_timeout)

    def _take(self, entries: Any, cursor: int, into: WireBatch, received: float) -> int:
        fields: Any = None
        wire: Any = None
        for entry_id, fields in entries:
            prev = fields.get(b"p")
            if prev is not None and int(prev) > cursor:
                raise BusGap(f"events {cursor}..{int(prev)} are not on {self._stream} "
                             "any more")
            wire = orjson.loads(fields[b"e"])
            into.append(wire)
            cursor = _seq_of(entry_id)
            if b"wa" in fields:  # a watermark written with this entry (a complete batch)
                into.watermark = _newer(into.watermark, _watermark(
                    cursor, fields[b"wa"], fields.get(b"we", b"")))
        if isinstance(wire, dict):  # the last entry of the read: a sample, O(1) per XREAD
            wire["timing"] = _timing(fields, received)
        return cursor

    async def follow(self, after: int, *, heartbeat: float = 1.0) -> AsyncIterator[BusBatch]:
        async with contextlib.aclosing(self.follow_wire(after, heartbeat=heartbeat)) as feed:
            async for batch in feed:
                timing = {int(wire["seq"]): wire.pop("timing") for wire in batch
                          if "timing" in wire}
                yield BusBatch([event_from_wire(wire) for wire in batch],
                               watermark=batch.watermark, timing=timing)

    async def follow_wire(self, after: int, *, heartbeat: float = 1.0
                          ) -> AsyncGenerator[WireBatch, None]:
        """``follow``, the events as the stream holds them (``tessera.bus.ports``)."""
        cursor, seen_head, wm_id = after, 0, "0-0"
        if self._socket_timeout is not None:  # the blocking read must end well before it
            heartbeat = min(heartbeat, self._socket_timeout / 2)
        block_ms = max(1, int(heartbeat * 1000))
        reader = self._reader()
        try:
            await self._check_gap(cursor)
            while True:
                reply = await reader.xread(
                    {self._stream: f"{cursor}-0", self._watermarks: wm_id}, block_ms)
                received = time.time()  # telemetry (the stage split), never a decision
                events = WireBatch()
                watermark: Watermark | None = None
                full = False
                for name, entries in reply:
                    if _text(name) == self._stream:
                        cursor = self._take(entries, cursor, events, received)
                        full = len(entries) >= _COUNT
                    elif entries:
                        wm_id = _text(entries[-1][0])
                        fields = entries[-1][1]
                        watermark = _watermark(fields.get(b"head"), fields.get(b"at"),
                                               fields.get(b"epoch"))
                watermark = _newer(watermark, events.watermark)
                if watermark is not None:
                    seen_head = max(seen_head, watermark.head)
                if cursor < seen_head and not full:
                    # Every event up to seen_head was on the stream before that watermark.
                    # One non-blocking read (a reply may carry only the key that woke it):
                    # nothing more means they are gone.
                    more = await reader.xread({self._stream: f"{cursor}-0"}, None)
                    entries = more[0][1] if more else []
                    if not entries:
                        raise BusGap(f"events {cursor}..{seen_head} are not on "
                                     f"{self._stream} any more")
                    cursor = self._take(entries, cursor, events, time.time())
                events.watermark = _newer(watermark, events.watermark)
                yield events
        except _TRANSIENT as exc:
            raise BusUnavailable(f"redis: {exc}") from None
        except RedisError as exc:
            raise BusUnavailable(f"redis: {exc}") from None
        finally:
            await reader.aclose()

    async def aclose(self) -> None:
        """Close the client, waiting at most ``CLOSE_TIMEOUT`` seconds: redis-py's close
        waits for each socket's close to complete (``wait_closed``), which can hang after a
        blocking read was cancelled (redis/redis-py#3941; seen once as a test that never
        ended). The transports are closed before that wait, so giving it up leaks
        nothing a shutdown would keep."""
        try:
            await asyncio.wait_for(self._close_clients(), CLOSE_TIMEOUT)
        except TimeoutError:
            _log.warning("redis bus: the client did not finish closing in %.0fs; "
                         "going on", CLOSE_TIMEOUT)

    async def _close_clients(self) -> None:
        await self._redis.aclose()
        if self._writer is not self._redis:
            await self._writer.aclose()


Entries = list[tuple[bytes, dict[bytes, bytes]]]

_pack_command: Callable[[tuple[Any, ...]], bytes] | None
try:  # the reply parser's package (the ``redis`` and ``verifier`` extras install it)
    from hiredis import pack_command as _pack_command
except ImportError:  # pragma: no cover - redis-py's own packer then
    _pack_command = None


class _Reader:
    """``XREAD`` for one follower: on its own connection (the module docstring), or through
    the client where it has no single pool (Redis Cluster)."""

    def __init__(self, client: Any, connection: Any, timeout: float | None) -> None:
        self._client = client
        self._connection = connection
        self._timeout = timeout

    async def xread(self, streams: dict[str, str], block_ms: int | None
                    ) -> list[tuple[bytes, Entries]]:
        """``[(stream, [(id, fields)])]`` for the streams with entries after the ids."""
        if self._connection is None:
            reply: Any = await self._client.xread(streams, count=_COUNT, block=block_ms)
            return list(reply.items()) if isinstance(reply, dict) else reply or []
        args: list[Any] = ["XREAD", "COUNT", _COUNT]
        if block_ms is not None:
            args += ["BLOCK", block_ms]
        args += ["STREAMS", *streams, *streams.values()]
        if not self._connection.is_connected:  # through connect(): a Sentinel-managed
            await self._connection.connect()    # one asks the Sentinels for the master
        if _pack_command is not None:  # hiredis packs in C: 1 µs, not redis-py's 8
            await self._connection.send_packed_command(_pack_command(tuple(args)))
        else:
            await self._connection.send_command(*args)
        if self._timeout is None:
            return _entries(await self._connection.read_response())
        try:  # a read cancelled by its deadline closes the connection (redis-py does)
            async with asyncio.timeout(self._timeout):
                return _entries(await self._connection.read_response())
        except TimeoutError:
            raise RedisTimeoutError(f"no reply in {self._timeout}s") from None

    async def aclose(self) -> None:
        if self._connection is not None:
            await self._connection.disconnect(nowait=True)


def _entries(reply: Any) -> list[tuple[bytes, Entries]]:
    """A raw ``XREAD`` reply (RESP2 lists or a RESP3 map) in the client's parsed shape."""
    if not reply:
        return []
    streams = reply.items() if isinstance(reply, dict) else reply
    return [(name, [(entry_id, dict(zip(fields[::2], fields[1::2], strict=True)))
                    for entry_id, fields in entries]) for name, entries in streams]


def _timing(fields: dict[bytes, bytes], received: float) -> dict[str, float]:
    """The stamps of one entry (``BusBatch.timing``); a malformed one is left out."""
    timing = {"received": received}
    for field, name in ((b"w", "relay_woken"), (b"r", "relay_read"), (b"x", "bus_added")):
        raw = fields.get(field)
        if raw is not None:
            try:
                value = float(raw)
            except ValueError:
                continue
            if math.isfinite(value):
                timing[name] = value
    return timing


def _newer(a: Watermark | None, b: Watermark | None) -> Watermark | None:
    """The later of two watermarks (by ``at``); either may be absent."""
    if a is None or b is None:
        return a if b is None else b
    return b if b.at >= a.at else a


def _watermark(head: Any, at: Any, epoch: bytes | str | None) -> Watermark | None:
    """A watermark from a stream's fields (an entry of ``S:watermarks``, or the ``wa``/
    ``we`` of an event entry); a malformed or incomplete one is ignored (it proves
    nothing)."""
    try:
        if epoch is None:
            raise ValueError("no epoch")
        return Watermark.from_wire({"head": int(head), "at": float(at),
                                    "epoch": _text(epoch)})
    except (TypeError, ValueError, WatermarkError):
        _log.warning("ignoring a malformed watermark entry")
        return None
