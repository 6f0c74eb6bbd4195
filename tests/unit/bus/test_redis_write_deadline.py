"""A publisher's write scripts run on a client without a socket timeout, each call bounded
by the bus's deadline instead (``RedisStreamsBus.from_url``): a server that never answers
a script fails the publish in time as ``BusUnavailable``, and the connection it was
waiting on is closed rather than kept with a reply pending."""

from __future__ import annotations

import asyncio
import time

import pytest

from tessera.bus.ports import BusUnavailable
from tessera.bus.redis_streams import RedisStreamsBus
from tessera.core.revocation import RevocationEvent, RevocationKind


class SilentOnScripts:
    """Just enough RESP for the bus to open its epoch; scripts get no answer."""

    def __init__(self) -> None:
        self.connections = 0
        self.closed = 0
        self.scripts = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while command := await self._command(reader):
                name = command[0].upper()
                if name in (b"EVALSHA", b"EVAL"):
                    self.scripts += 1  # and never answer
                elif name == b"GET":
                    writer.write(b"$4\r\nepoc\r\n")
                elif name == b"HELLO":  # RESP3 refused: the client goes on in RESP2
                    writer.write(b"-ERR unknown command 'HELLO'\r\n")
                elif name == b"PING":  # the pool's health check
                    writer.write(b"+PONG\r\n")
                else:  # SET NX, CLIENT SETINFO, ...
                    writer.write(b"+OK\r\n")
                await writer.drain()
        finally:
            self.closed += 1
            writer.close()

    @staticmethod
    async def _command(reader: asyncio.StreamReader) -> list[bytes] | None:
        head = await reader.readline()
        if not head.startswith(b"*"):
            return None
        parts = []
        for _ in range(int(head[1:])):
            size = int((await reader.readline())[1:])
            parts.append((await reader.readexactly(size + 2))[:-2])
        return parts


async def test_a_publish_past_its_deadline_fails_and_closes_its_connection() -> None:
    server = SilentOnScripts()
    listening = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    bus = RedisStreamsBus.from_url(f"redis://127.0.0.1:{port}", socket_timeout=0.3)
    event = RevocationEvent(kind=RevocationKind.TOKEN_REVOKED, key="jti-1", at=1.0,
                            expires_at=2.0, seq=1)
    try:
        started = time.monotonic()
        with pytest.raises(BusUnavailable, match=r"no reply in 0\.3s"):
            await bus.publish([event])
        assert time.monotonic() - started < 2.0
        assert server.scripts == 1
        for _ in range(100):  # the abandoned connection is closed, not reused
            if server.closed:
                break
            await asyncio.sleep(0.01)
        assert server.closed >= 1
        with pytest.raises(BusUnavailable):  # a fresh connection, the same deadline
            await bus.publish([event])
        assert server.scripts == 2
    finally:
        await bus.aclose()
        listening.close()
        await listening.wait_closed()
