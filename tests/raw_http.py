"""Raw HTTP/1.1 over a socket, as an attacker (or a test of a server's limits) speaks it:
bytes sent exactly as given, in pieces and at the pace chosen, the answer read while
sending (a server may answer and close before the request is complete)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

__all__ = ["Answer", "exchange", "get"]


@dataclass
class Answer:
    status: int | None
    """None: the server closed without a status line."""
    raw: bytes
    elapsed: float

    @property
    def headers(self) -> dict[str, str]:
        """Lower-case name → value (the last one of a repeated name)."""
        head = self.raw.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]
        return {name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in head)}

    @property
    def body(self) -> bytes:
        return self.raw.partition(b"\r\n\r\n")[2]


async def exchange(port: int, *chunks: bytes, pause: float = 0.0, timeout: float = 5.0
                   ) -> Answer:
    """Send ``chunks`` (``pause`` between them) while reading whatever the server answers,
    until it closes (or ``timeout``: then ``status`` is None if it said nothing)."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = bytearray()

    async def read_all() -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                received.extend(data)

    reading = asyncio.get_running_loop().create_task(read_all())
    try:
        for i, chunk in enumerate(chunks):
            if reading.done():
                break  # the server answered and closed while we were still sending
            if i and pause:
                await asyncio.sleep(pause)
            try:
                writer.write(chunk)
                await writer.drain()
            except OSError:
                break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(reading), timeout)
    finally:
        reading.cancel()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    raw = bytes(received)
    status = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else None
    return Answer(status, raw, time.monotonic() - started)


def get(path: str = "/", *headers: bytes, close: bool = True) -> bytes:
    """A GET request head with ``headers`` (``b"Name: value"``) sent as they are."""
    lines = [f"GET {path} HTTP/1.1".encode(), b"Host: t", *headers]
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"
