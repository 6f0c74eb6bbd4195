"""Refresh-token load: refresh tokens rotate on every use, so a fixed-body wrk run cannot
drive them. Each of N workers holds its own refresh chain (one login through /authorize
with PKCE, like tests/support.py) and a keep-alive connection, and presents its current
refresh token, takes the successor from the 200 response, and goes again.

The load loop speaks HTTP/1.1 on raw asyncio streams rather than httpx: on a 2-core box
the generator shares the CPU with the server, and httpx costs several times more per
request. httpx is used for the (unmeasured) login flow only."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import html
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

__all__ = ["RefreshStats", "login_chains", "run_refresh_load"]

_FIELDS = re.compile(r"name='([^']+)' value='([^']*)'")


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def _one_login(base: str, client_id: str, secret: str, redirect: str, username: str,
                     password: str, scope: str, resource: str) -> str:
    verifier, challenge = _pkce()
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect,
              "scope": scope, "state": "bench", "code_challenge": challenge,
              "code_challenge_method": "S256", "resource": resource}
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:  # own cookie jar
        page = await http.get("/authorize", params=params)
        if page.status_code != 200:
            raise RuntimeError(f"/authorize: {page.status_code} {page.text[:300]}")
        form = {k: html.unescape(v) for k, v in _FIELDS.findall(page.text)}
        form |= {"username": username, "password": password}
        done = await http.post("/authorize", data=form)
        if done.status_code != 303:
            raise RuntimeError(f"login: {done.status_code} {done.text[:300]}")
        query = parse_qs(urlsplit(done.headers["location"]).query)
        if query.get("state") != ["bench"] or "code" not in query:
            raise RuntimeError(f"login redirect without code: {done.headers['location']}")
        token = await http.post("/token", auth=(client_id, secret), data={
            "grant_type": "authorization_code", "code": query["code"][0],
            "redirect_uri": redirect, "code_verifier": verifier})
        if token.status_code != 200 or "refresh_token" not in token.json():
            raise RuntimeError(f"code exchange: {token.status_code} {token.text[:300]}")
        return str(token.json()["refresh_token"])


async def login_chains(base: str, *, count: int, client_id: str, secret: str, redirect: str,
                       username: str, password: str, scope: str, resource: str) -> list[str]:
    """``count`` independent refresh chains (one session each). Sequential: each login
    verifies a password with argon2, and the service throttles nothing that succeeds."""
    return [await _one_login(base, client_id, secret, redirect, username, password, scope,
                             resource) for _ in range(count)]


@dataclass
class RefreshStats:
    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    non2xx: int = 0
    errors: int = 0
    timeouts: int = 0
    bad_bodies: int = 0
    broken_chains: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    client_cpu_s: float = 0.0
    """CPU time the load generator (this process) spent during the run."""


class _Conn:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            lname = name.strip().lower()
            if lname == b"content-length":
                length = int(value.strip())
            elif lname == b"connection" and value.strip().lower() == b"close":
                close = True
        body = await self.reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def _worker(conn: _Conn, token: str, auth: str, deadline: float,
                  stats: RefreshStats, sample_every: int) -> None:
    host = f"{conn.host}:{conn.port}".encode()
    n = 0
    while time.perf_counter() < deadline:
        body = urlencode({"grant_type": "refresh_token", "refresh_token": token}).encode()
        raw = (b"POST /token HTTP/1.1\r\nHost: " + host + b"\r\nAuthorization: "
               + auth.encode() + b"\r\nContent-Type: application/x-www-form-urlencoded\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        t0 = time.perf_counter()
        try:
            status, payload = await asyncio.wait_for(conn.request(raw), timeout=5.0)
        except TimeoutError:
            # no answer in 5 s (wrk's --timeout too): the server may have rotated the token,
            # and a retry now would land outside the 5 s grace window and be (rightly)
            # treated as reuse, revoking the family. Count it and end this chain.
            stats.errors += 1
            stats.timeouts += 1
            stats.broken_chains += 1
            await conn.close()
            return
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError, IndexError):
            stats.errors += 1
            await conn.close()
            await asyncio.sleep(0.01)
            continue  # same token again at once: a lost response is replayed in the grace window
        stats.latencies.append(time.perf_counter() - t0)
        stats.statuses[status] = stats.statuses.get(status, 0) + 1
        if status != 200:
            stats.non2xx += 1
            if status in (400, 401):  # invalid_grant: this chain is dead
                stats.broken_chains += 1
                return
            continue
        try:
            data = json.loads(payload)
            token = data["refresh_token"]
        except (ValueError, KeyError):
            stats.bad_bodies += 1
            return
        stats.ok += 1
        n += 1
        if n % sample_every == 1 and len(stats.samples) < 64:
            stats.samples.append(data)


async def run_refresh_load(host: str, port: int, tokens: list[str], *, client_id: str,
                           secret: str, seconds: float) -> RefreshStats:
    auth = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    stats = RefreshStats()
    conns = [_Conn(host, port) for _ in tokens]
    cpu0, t0 = time.process_time(), time.perf_counter()
    deadline = t0 + seconds
    try:
        await asyncio.gather(*(_worker(c, t, auth, deadline, stats, 97)
                               for c, t in zip(conns, tokens, strict=True)))
    finally:
        stats.elapsed_s = time.perf_counter() - t0
        stats.client_cpu_s = time.process_time() - cpu0
        for c in conns:
            await c.close()
    return stats
