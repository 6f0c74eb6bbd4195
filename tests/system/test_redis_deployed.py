"""Redis as it is deployed (issue 16 item 2): TLS with a CA made at test time, an ACL user
and password in the URL, Sentinel (and a failover under a following consumer), Cluster.

Every Redis here is a ``redis-server`` of this test alone on free ports; the machine's
shared Redis is never touched. What must hold, through ``tessera.bus.redis_url``:

- the revocation stream, the DPoP replay cache, the throttles and the envelope
  de-duplication all work over ``rediss://user:password@…`` and through the Sentinels;
- a wrong password or plain TCP to the TLS port is refused (and the password is not in
  the error);
- after the Sentinels promote the replica, a follower that was cut off reconnects to the
  new master through the same URL and receives what is published there, from its cursor;
- on a Cluster, the stream must carry a hash tag (its scripts touch three keys) and
  works when it does.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from limits import RateLimitItemPerMinute
from limits.aio.strategies import MovingWindowRateLimiter
from redis.exceptions import AuthenticationError, RedisError

from tessera.bus import BusUnavailable, OutboxBatch
from tessera.bus.redis_streams import RedisStreamsBus
from tessera.bus.redis_url import RedisUrlError, connect, limits_storage, parse
from tessera.core.revocation import RevocationEvent, RevocationKind
from tessera.identity.throttle_redis import SignalledRedisStorage
from tessera.verifier.envelope import RedisSeenEnvelopes
from tessera.verifier.replay import RedisReplayCache
from tests.conftest import IN_CI
from tests.system._procs import Proc, base_env, free_port, spawn

USER, PASSWORD = "tessera", "s3cret-Pa55"
SERVICE = "tessera-main"


def _need_redis() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("redis-server is required in CI")
        pytest.skip("redis-server is not installed")
    return binary


@dataclass
class Pki:
    ca: Path
    cert: Path
    key: Path


def make_pki(tmp: Path) -> Pki:
    """A CA and a server certificate for 127.0.0.1, made now (nothing checked in)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tessera test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=1))
          .not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pki = Pki(tmp / "ca.pem", tmp / "server.pem", tmp / "server.key")
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return pki


def _tls_lines(pki: Pki, port: int) -> list[str]:
    return ["port 0", f"tls-port {port}", f"tls-cert-file {pki.cert}",
            f"tls-key-file {pki.key}", f"tls-ca-cert-file {pki.ca}", "tls-auth-clients no",
            "tls-replication yes"]


async def _start(tmp: Path, name: str, lines: list[str], port: int, *,
                 sentinel: bool = False) -> Proc:
    binary = _need_redis()
    conf = tmp / f"{name}.conf"
    conf.write_text("\n".join(["bind 127.0.0.1", 'save ""', "appendonly no",
                               f"dir {tmp}", *lines]) + "\n")
    cmd = [binary, str(conf)] + (["--sentinel"] if sentinel else [])
    proc = await spawn(name, cmd, env=base_env(), cwd=tmp, log=tmp / f"{name}.log")
    deadline = time.monotonic() + 10
    while True:
        if not proc.running:
            raise RuntimeError(f"{name} exited:\n{proc.log_tail()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)
            continue
        writer.close()
        await writer.wait_closed()
        return proc


LEAST_PRIVILEGE = ("~tessera:* ~{tessera}:* ~LIMITS* &* -@all +@read +@write +@stream "
                   "+@scripting +ping +info +publish +subscribe +unsubscribe")
"""The ACL docs/deploy.md §7 recommends for instances and verifiers."""


def _acl(pki: Pki, port: int, rules: str = "~* &* +@all") -> list[str]:
    """TLS on ``port`` only; the default user off, one ACL user with a password."""
    return [*_tls_lines(pki, port), "user default off", f"user {USER} on >{PASSWORD} {rules}",
            f"masteruser {USER}", f"masterauth {PASSWORD}"]


def _event(seq: int) -> RevocationEvent:
    return RevocationEvent(RevocationKind.SESSION_REVOKED, f"sid-{seq}", at=1.0,
                           expires_at=2e9, seq=seq)


async def _read(bus: RedisStreamsBus, cursor: int, until: int, *,
                timeout: float = 10.0) -> list[int]:
    """Seqs read after ``cursor`` up to ``until``; a dropped connection is retried, as the
    verifier's follower does (``BusUnavailable`` → follow again from the cursor)."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while cursor < until:
        follower = bus.follow(cursor, heartbeat=0.1)
        try:
            async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                async for batch in follower:
                    for event in batch:
                        seen.append(event.seq or 0)
                        cursor = event.seq or cursor
                    if cursor >= until:
                        break
        except BusUnavailable:
            await asyncio.sleep(0.1)
        finally:
            await follower.aclose()  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise AssertionError(f"read {seen}, not up to {until}")
    return seen


async def _everything_works(url: str) -> None:
    """The stream, the DPoP replay cache, a throttle and envelope de-duplication."""
    stream = f"tessera:test:{uuid.uuid4().hex}"
    bus = RedisStreamsBus.from_url(url, stream=stream)
    try:
        await bus.publish(OutboxBatch([_event(1), _event(2), _event(3)], after=0))
        assert await _read(bus, 0, 3) == [1, 2, 3]
    finally:
        await bus.aclose()
    replay = RedisReplayCache.from_url(url, prefix=f"tessera:test:dpop:{uuid.uuid4().hex}:")
    try:
        assert await replay.first_use("proof-jti", ttl=30, now=time.time())
        assert not await replay.first_use("proof-jti", ttl=30, now=time.time())
    finally:
        await replay.aclose()
    storage, client = limits_storage(url, storage_class=SignalledRedisStorage,
                                     wrap_exceptions=True,
                                     hits_channel=f"tessera:test:{uuid.uuid4().hex}:hits")
    try:
        limiter = MovingWindowRateLimiter(storage)
        assert not storage.nothing_recorded()  # starts the hit listener
        deadline = time.monotonic() + 5
        while not storage.nothing_recorded():  # subscribed (the ACL allows it), no hit
            assert time.monotonic() < deadline, "the throttle hit listener never subscribed"
            await asyncio.sleep(0.02)
        item, key = RateLimitItemPerMinute(2), uuid.uuid4().hex
        assert [await limiter.hit(item, key) for _ in range(3)] == [True, True, False]
        assert not storage.nothing_recorded()  # announced: the mark is set
        assert await client.pttl(storage.listener.mark) > 0
    finally:
        await storage.listener.aclose()
        await client.aclose()
    seen = await asyncio.to_thread(_dedup, url)
    assert seen == [None, "body-hash", "body-hash"]


def _dedup(url: str) -> list[str | None]:
    store = RedisSeenEnvelopes.from_url(url, prefix=f"tessera:test:env:{uuid.uuid4().hex}:")
    try:
        now = time.time()
        return [store.claim(("svc", "e1"), "body-hash", now + 30, now),
                store.claim(("svc", "e1"), "body-hash", now + 30, now),
                store.claim(("svc", "e1"), "other-body", now + 30, now)]
    finally:
        store.close()


@pytest.fixture
async def tls_redis(tmp_path: Path) -> AsyncIterator[tuple[Pki, int]]:
    pki = make_pki(tmp_path)
    port = free_port()
    proc = await _start(tmp_path, "redis-tls", _acl(pki, port, LEAST_PRIVILEGE), port)
    try:
        yield pki, port
    finally:
        await proc.kill(signal.SIGKILL)


async def test_tls_and_acl_user_in_the_url(tls_redis: tuple[Pki, int]) -> None:
    """Over TLS, as a user with the least-privilege ACL of docs/deploy.md."""
    pki, port = tls_redis
    url = f"rediss://{USER}:{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={pki.ca}"
    assert parse(url).tls
    await _everything_works(url)

    wrong = connect(f"rediss://{USER}:wrong@127.0.0.1:{port}/0?ssl_ca_certs={pki.ca}",
                    socket_connect_timeout=2, socket_timeout=2)
    with pytest.raises(AuthenticationError) as refused:
        await wrong.ping()
    assert "wrong" not in str(refused.value)
    await wrong.aclose()
    plain = connect(f"redis://{USER}:{PASSWORD}@127.0.0.1:{port}/0",
                    socket_connect_timeout=2, socket_timeout=2)
    with pytest.raises((RedisError, OSError)):
        await plain.ping()  # plain TCP to the TLS port
    await plain.aclose()
    untrusted = connect(f"rediss://{USER}:{PASSWORD}@127.0.0.1:{port}/0",
                        socket_connect_timeout=2, socket_timeout=2)
    with pytest.raises((RedisError, OSError)):
        await untrusted.ping()  # the system CAs do not vouch for this server
    await untrusted.aclose()


async def test_sentinel_finds_the_master_and_a_follower_survives_a_failover(
        tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    master_port, replica_port, sentinel_port = free_port(), free_port(), free_port()
    master = await _start(tmp_path, "master", _acl(pki, master_port), master_port)
    replica = await _start(tmp_path, "replica", [*_acl(pki, replica_port),
                                                 f"replicaof 127.0.0.1 {master_port}"],
                           replica_port)
    sentinel = await _start(tmp_path, "sentinel", [
        *_tls_lines(pki, sentinel_port),
        f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} 1",
        f"sentinel auth-user {SERVICE} {USER}", f"sentinel auth-pass {SERVICE} {PASSWORD}",
        f"sentinel down-after-milliseconds {SERVICE} 500",
        f"sentinel failover-timeout {SERVICE} 2000"], sentinel_port, sentinel=True)
    url = (f"rediss+sentinel://{USER}:{PASSWORD}@127.0.0.1:{sentinel_port}/{SERVICE}/0"
           f"?ssl_ca_certs={pki.ca}")
    procs = [master, replica, sentinel]
    try:
        await _everything_works(url)

        stream = f"tessera:test:{uuid.uuid4().hex}"
        relay = RedisStreamsBus.from_url(url, stream=stream, socket_timeout=1.0)
        follower = RedisStreamsBus.from_url(url, stream=stream, socket_timeout=1.0)
        try:
            await relay.publish(OutboxBatch([_event(1), _event(2)], after=0))
            assert await _read(follower, 0, 2) == [1, 2]
            direct = connect(f"rediss://{USER}:{PASSWORD}@127.0.0.1:{master_port}/0"
                             f"?ssl_ca_certs={pki.ca}")
            assert await direct.wait(1, 5000) == 1  # the replica holds both entries
            await direct.aclose()
            await master.kill(signal.SIGKILL)  # the Sentinel promotes the replica

            async def publish_on_new_master() -> None:
                deadline = time.monotonic() + 20
                while True:
                    try:
                        await relay.publish(OutboxBatch([_event(3), _event(4)], after=2))
                        return
                    except BusUnavailable:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.2)

            reading = asyncio.create_task(_read(follower, 2, 4, timeout=25))
            await publish_on_new_master()
            assert await reading == [3, 4]  # same epoch, no gap: carried on from its cursor
            promoted = connect(f"rediss://{USER}:{PASSWORD}@127.0.0.1:{replica_port}/0"
                               f"?ssl_ca_certs={pki.ca}")
            role = await promoted.execute_command("ROLE")
            await promoted.aclose()
            assert role[0] in (b"master", "master")
        finally:
            await relay.aclose()
            await follower.aclose()
    finally:
        for proc in procs:
            await proc.kill(signal.SIGKILL)


async def test_cluster_needs_a_hash_tag_on_the_stream(tmp_path: Path) -> None:
    port = free_port()
    while port > 55535:  # the cluster bus listens on port + 10000
        port = free_port()
    node = await _start(tmp_path, "cluster", [f"port {port}", "cluster-enabled yes",
                                              f"cluster-config-file {tmp_path}/nodes.conf"],
                        port)
    try:
        admin = connect(f"redis://127.0.0.1:{port}/0")
        await admin.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        deadline = time.monotonic() + 10
        while b"cluster_state:ok" not in await admin.execute_command("CLUSTER", "INFO"):
            assert time.monotonic() < deadline, "the one-node cluster did not come up"
            await asyncio.sleep(0.05)
        await admin.aclose()
        url = f"redis+cluster://127.0.0.1:{port}"
        with pytest.raises(RedisUrlError, match="hash tag"):
            RedisStreamsBus.from_url(url, stream="tessera:revocations")
        stream = f"{{tessera}}:test:{uuid.uuid4().hex}"
        bus = RedisStreamsBus.from_url(url, stream=stream)
        try:
            await bus.publish(OutboxBatch([_event(1), _event(2)], after=0))
            await bus.mark(2, time.time())
            assert await _read(bus, 0, 2) == [1, 2]
        finally:
            await bus.aclose()
        replay = RedisReplayCache.from_url(url, prefix="tessera:test:dpop:")
        try:
            key = uuid.uuid4().hex
            assert await replay.first_use(key, ttl=30, now=time.time())
            assert not await replay.first_use(key, ttl=30, now=time.time())
        finally:
            await replay.aclose()
    finally:
        await node.kill(signal.SIGKILL)


def test_urls_are_read_or_refused_with_the_fix() -> None:
    target = parse(f"redis+sentinel://u:p%40ss@a:26379,b:26380/{SERVICE}/2"
                   "?sentinel_password=sp")
    assert target.mode == "sentinel" and target.sentinels == (("a", 26379), ("b", 26380))
    assert (target.service, target.db, target.username, target.password,
            target.sentinel_password) == (SERVICE, 2, "u", "p@ss", "sp")
    assert "p@ss" not in repr(target)
    assert parse("rediss+cluster://n1:6379").url == "rediss://n1:6379"
    for bad, fix in (("http://x", "unsupported Redis URL scheme"),
                     ("redis+sentinel://a:26379", "names no service"),
                     ("redis+sentinel://a:xx/m", "is not host:port")):
        with pytest.raises(RedisUrlError, match=fix):
            parse(bad)
