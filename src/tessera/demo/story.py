"""The scripted story of ``tessera demo``: log in, call two services through the gateway
(each hop with its own exchanged token), hand an async job to a queue consumer with an
identity envelope, log out, and time how long each party keeps accepting the old
credentials — and how soon a relying party (back-channel logout) and an SSF receiver
outside the platform hear of the logout. Embedded defaults only: SQLite, the HTTP
revocation feed, an in-process queue. Every process it starts is stopped before it returns."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import uvicorn

from tessera import jose
from tessera.application import admin
from tessera.core.clients import GRANT_TOKEN_EXCHANGE
from tessera.core.clock import SystemClock
from tessera.core.signals import CAEP_SESSION_REVOKED, DELIVERY_PUSH
from tessera.demo.procs import Processes, free_port
from tessera.demo.receivers import Heard, Listeners
from tessera.identity.compose import build_identity
from tessera.identity.signals.ssf_api import SSF_SCOPE
from tessera.settings import Settings
from tessera.store.migrations import upgrade_database
from tessera.verifier import VerificationPolicy
from tessera.verifier.driver import Verifier
from tessera.verifier.envelope import (
    EnvelopeDenied,
    EnvelopePolicy,
    EnvelopeSigner,
    EnvelopeVerifier,
)
from tessera.verifier.jwks import JwksCache
from tessera.verifier.revocation import RevocationFollower, RevocationState
from tessera.verifier.revocation.sources import HttpFeedSource

__all__ = ["run_demo"]

EDGE, ORDERS, BILLING = "https://edge.demo", "https://orders.demo", "https://billing.demo"
REDIRECT = "https://app.demo/callback"
EVENTS = "tessera:events"
_TESSERA = [sys.executable, "-m", "tessera.cli.main"]


def say(text: str = "") -> None:
    print(text, flush=True)


def claims(token: str) -> dict[str, Any]:
    return jose.unverified_claims(token)


def brief(token: str) -> str:
    c = claims(token)
    act = f" act={c['act']['sub']}" if "act" in c else ""
    return f"aud={c['aud']} scope='{c.get('scope', '')}' ttl={c['exp'] - c['iat']}s{act}"


async def _seed(settings: Settings, password: str, listeners: str) -> dict[str, Any]:
    settings.prepare_data_dir()
    await asyncio.to_thread(upgrade_database, settings.resolved_database_url)
    identity = await build_identity(settings, clock=SystemClock())
    try:
        web, web_secret = await admin.create_client(
            identity.admin, name="web app", grants=("authorization_code", "refresh_token"),
            redirect_uris=(REDIRECT,), scope="openid orders:read billing:read",
            audiences=(EDGE,), backchannel_logout_uri=f"{listeners}/rp/logout",
            backchannel_logout_session_required=True)
        creds = {"web": (web.client_id, web_secret)}
        siem, siem_secret = await admin.create_client(
            identity.admin, name="SIEM (SSF receiver)", grants=("client_credentials",),
            scope=SSF_SCOPE)
        creds["siem"] = (siem.client_id, siem_secret)
        gateway, secret = await admin.create_client(
            identity.admin, name="edge gateway", grants=(GRANT_TOKEN_EXCHANGE,),
            scope=f"{EVENTS} orders:read billing:read", audiences=(ORDERS, BILLING),
            subject_audiences=(EDGE,))
        creds["gateway"] = (gateway.client_id, secret)
        for name in ("orders", "billing", "jobs"):
            client, secret = await admin.create_client(
                identity.admin, name=f"{name} service", grants=("client_credentials",),
                scope=EVENTS)
            creds[name] = (client.client_id, secret)
        await admin.create_user(identity.admin, username="alice", password=password)
    finally:
        await identity.aclose()
    return creds


def _policy(path: Path) -> None:
    path.write_text(f"""acr_levels: [urn:tessera:acr:pwd, urn:tessera:acr:mfa]
routes:
  - match: {{path: "/orders/**", methods: [GET]}}
    audience: {EDGE}
    scopes: [orders:read]
    exchange_to: {ORDERS}
    exchange_scope: orders:read
  - match: {{path: "/billing/**", methods: [GET]}}
    audience: {EDGE}
    scopes: [billing:read]
    exchange_to: {BILLING}
    exchange_scope: billing:read
""")


async def _login(http: httpx.AsyncClient, web: tuple[str, str], password: str
                 ) -> dict[str, Any]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    page = await http.get("/authorize", params={
        "response_type": "code", "client_id": web[0], "redirect_uri": REDIRECT,
        "scope": "openid orders:read billing:read", "state": "demo",
        "code_challenge": challenge, "code_challenge_method": "S256"})
    form = dict(re.findall(r"name='([^']+)' value='([^']*)'", page.text))
    form |= {"username": "alice", "password": password}
    done = await http.post("/authorize", data=form)
    code = parse_qs(urlsplit(done.headers["location"]).query)["code"][0]
    response = await http.post("/token", auth=web, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": verifier})
    response.raise_for_status()
    return dict(response.json())


async def _through_gateway(gateway: str, service: str, path: str, token: str
                           ) -> tuple[int, str | None, Any]:
    """What nginx's auth_request does: ask the gateway, then call the service with the
    exchanged token it hands back."""
    async with httpx.AsyncClient(timeout=5) as http:
        decision = await http.get(f"{gateway}/forward-auth", headers={
            "authorization": f"Bearer {token}", "x-original-method": "GET",
            "x-original-uri": path, "host": "demo.local"})
        if decision.status_code != 200:
            return decision.status_code, None, decision.headers.get("www-authenticate")
        downstream = decision.headers["x-tessera-token"]
        answer = await http.get(f"{service}{path}",
                                headers={"authorization": f"Bearer {downstream}"})
        return answer.status_code, downstream, answer.json()


async def _until_refused(check: Callable[[], Awaitable[bool]], started: float) -> float:
    """Milliseconds from ``started`` until ``check`` first reports a refusal."""
    deadline = started + 15
    while time.perf_counter() < deadline:
        if await check():
            return (time.perf_counter() - started) * 1000
        await asyncio.sleep(0.002)
    raise RuntimeError("still accepted after 15 s")


async def _ssf_stream(http: httpx.AsyncClient, siem: tuple[str, str], endpoint: str) -> None:
    """The SIEM registers a push stream for session-revoked (OpenID SSF 1.0)."""
    token = (await http.post("/token", auth=siem, data={
        "grant_type": "client_credentials", "scope": SSF_SCOPE})).json()["access_token"]
    created = await http.post("/ssf/streams", headers={"authorization": f"Bearer {token}"},
                              json={"delivery": {"method": DELIVERY_PUSH,
                                                 "endpoint_url": endpoint},
                                    "events_requested": [CAEP_SESSION_REVOKED]})
    created.raise_for_status()


async def _until_heard(heard: list[Heard], started: float) -> float:
    """Milliseconds from ``started`` until the first arrival in ``heard``."""
    deadline = time.perf_counter() + 15
    while not heard:
        if time.perf_counter() > deadline:
            raise RuntimeError("nothing delivered after 15 s")
        await asyncio.sleep(0.005)
    return (heard[0].at - started) * 1000


async def _story(tmp: Path, procs: Processes) -> None:
    ports = {name: free_port() for name in ("identity", "gateway", "orders", "billing",
                                            "listeners")}
    issuer = f"http://127.0.0.1:{ports['identity']}"
    base = {"TESSERA_DATA_DIR": str(tmp / "data"), "TESSERA_ISSUER": issuer}
    password = secrets.token_urlsafe(12)
    listening = f"http://127.0.0.1:{ports['listeners']}"
    creds = await _seed(Settings(issuer=issuer, data_dir=tmp / "data"), password, listening)
    say(f"  data and logs in {tmp}")
    await procs.start("identity", [*_TESSERA, "serve", "--port", str(ports["identity"])],
                      env=base, health=f"{issuer}/healthz")
    _policy(tmp / "policy.yaml")

    def verifier_env(who: str, audience: str) -> dict[str, str]:
        return {"TESSERA_VERIFIER_ISSUER": issuer, "TESSERA_VERIFIER_AUDIENCE": audience,
                "TESSERA_VERIFIER_CLIENT_ID": creds[who][0],
                "TESSERA_VERIFIER_CLIENT_SECRET": str(creds[who][1]),
                "TESSERA_VERIFIER_FEED_HEARTBEAT_TIMEOUT": "2"}

    gateway = f"http://127.0.0.1:{ports['gateway']}"
    await procs.start("gateway", [*_TESSERA, "gateway", "--policy", str(tmp / "policy.yaml"),
                                  "--port", str(ports["gateway"])],
                      env=base | verifier_env("gateway", EDGE), health=f"{gateway}/healthz")
    urls = {}
    for name, audience in (("orders", ORDERS), ("billing", BILLING)):
        urls[name] = f"http://127.0.0.1:{ports[name]}"
        await procs.start(name, [sys.executable, "-m", "uvicorn",
                                 "tessera.demo.services:create_app", "--factory",
                                 "--port", str(ports[name]), "--log-level", "warning"],
                          env=base | verifier_env(name, audience) |
                          {"TESSERA_DEMO_SERVICE": name}, health=f"{urls[name]}/healthz")
    listeners = Listeners(issuer, creds["web"][0], creds["siem"][0])
    server = uvicorn.Server(uvicorn.Config(listeners.app(), host="127.0.0.1",
                                           port=ports["listeners"], log_level="warning",
                                           lifespan="off"))
    serving = asyncio.get_running_loop().create_task(server.serve())
    say("  started: identity service, gateway, orders and billing services, job consumer,")
    say("           a relying party's back-channel logout endpoint and an SSF receiver\n")

    clock = SystemClock()
    state = RevocationState()
    follower = RevocationFollower(state, HttpFeedSource(
        issuer, client_id=creds["jobs"][0], client_secret=str(creds["jobs"][1])), clock=clock)
    follower.start()
    signer = EnvelopeSigner.generate("orders", clock=clock)
    consumer = EnvelopeVerifier(EnvelopePolicy(audience="jobs"),
                                publishers={"orders": signer.jwks()}, revocation_state=state,
                                clock=clock, service="jobs")
    edge = Verifier(VerificationPolicy(issuer=issuer, audience=EDGE),
                    jwks=JwksCache(issuer, clock=clock), clock=clock, state=state)
    try:
        await asyncio.wait_for(follower.synced(), 10)
        async with httpx.AsyncClient(base_url=issuer, timeout=10) as http:
            listeners.jwks = (await http.get("/jwks")).json()
            await _ssf_stream(http, creds["siem"], f"{listening}/ssf/events")
            say("1. alice logs in (authorization code + PKCE through the login page)")
            tokens = await _login(http, creds["web"], password)
            user_token = tokens["access_token"]
            c = claims(user_token)
            say(f"   access token: {brief(user_token)} sid={c['sid'][:8]}… sv={c['sv']}")

            exchanged: dict[str, str] = {}
            for step, name in ((2, "orders"), (3, "billing")):
                say(f"{step}. GET /{name} through the gateway")
                status, downstream, body = await _through_gateway(
                    gateway, urls[name], f"/{name}", user_token)
                assert downstream is not None, body
                exchanged[name] = downstream
                say(f"   gateway: 200, exchanged (RFC 8693) → {brief(downstream)}")
                say(f"   {name} service: {status} {body}")

            say("4. the orders service hands a job to the queue, with an identity envelope")
            verified = await edge.verify(user_token)
            queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
            job = b'{"job": "send-invoice", "order": 42}'
            await queue.put((signer.sign(verified, body=job, audience="jobs",
                                         request_id="req-42"), job))
            envelope, body = await queue.get()
            result = consumer.verify(envelope, body)
            say(f"   consumer: processed for actor {result.actor[:8]}… "
                f"(decided at {result.basis.value}); the envelope carries no bearer token")

            say("5. alice logs out (RP-initiated logout with id_token_hint)")
            started = time.perf_counter()
            response = await http.get("/logout", params={"id_token_hint": tokens["id_token"]})
            say(f"   identity service: {response.status_code}, session and refresh family "
                "ended")

        async def gateway_refuses() -> bool:
            return (await _through_gateway(gateway, urls["orders"], "/orders",
                                           user_token))[0] == 401

        def service_refuses(name: str) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                async with httpx.AsyncClient(timeout=5) as http:
                    answer = await http.get(f"{urls[name]}/{name}", headers={
                        "authorization": f"Bearer {exchanged[name]}"})
                return answer.status_code == 401
            return check

        async def consumer_refuses() -> bool:
            late = signer.sign(verified, body=job, audience="jobs", request_id="req-43")
            try:
                consumer.verify(late, job)
            except EnvelopeDenied:
                return True
            return False

        say("6. every party rejects the old credentials, long before they expire:")
        checks: dict[str, Callable[[], Awaitable[bool]]] = {
            "gateway (edge token)": gateway_refuses,
            "orders service (its exchanged token)": service_refuses("orders"),
            "billing service (its exchanged token)": service_refuses("billing"),
            "job consumer (new envelope)": consumer_refuses}
        times = await asyncio.gather(*(_until_refused(check, started)
                                       for check in checks.values()))
        for party, ms in zip(checks, times, strict=True):
            say(f"   {party:<40} refused after {ms:7.1f} ms")
        say(f"   (the access token had {c['exp'] - int(time.time())} s left to live)")
        say("7. outside the platform, the logout is heard too (delivered from the outbox):")
        logout_ms = await _until_heard(listeners.logouts, started)
        set_ms = await _until_heard(listeners.sets, started)
        heard = listeners.logouts[0].claims
        say(f"   relying party: back-channel logout token (sid={str(heard.get('sid'))[:8]}…, "
            f"jti={heard['jti'][:8]}…) after {logout_ms:7.1f} ms")
        event = next(iter(listeners.sets[0].claims["events"]))
        say(f"   SSF receiver: {event.rsplit('/', 1)[-1]} SET after {set_ms:7.1f} ms")
    finally:
        server.should_exit = True
        await serving
        await follower.aclose()
        await edge.aclose()


async def run_demo(*, keep: bool = False) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="tessera-demo-"))
    procs = Processes(tmp)
    say("Tessera demo: the token lifecycle across a gateway, two services and a queue\n")
    try:
        await _story(tmp, procs)
        say("\ndone: all processes stopped.")
        return 0
    except Exception as exc:
        say(f"\ndemo failed: {exc} (logs in {tmp})")
        keep = True
        return 1
    finally:
        await procs.stop_all()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
