"""What a server span per request costs: Tessera's ``TracingMiddleware`` next to
OpenTelemetry's ASGI instrumentation (``opentelemetry-instrumentation-asgi``), both with
tracing off (the API's no-op provider, the default) and on (an SDK provider, spans dropped
by a no-op processor), around the same one-route Starlette app, called in-process.

    python bench/tracing_middleware.py [--quick]

Issue 14 asked to replace the home-made middleware with the library's; this measures
why Tessera keeps its own (docs/tracing.md): the library's adds several times the
per-request cost on the token endpoint's hot path, mostly in work Tessera does not use
(HTTP metrics histograms, active-request counters, attribute collection and URL parsing
on every request, tracing on or off). The last line is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from opentelemetry.sdk.trace import TracerProvider
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tessera.observability import tracing

try:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
except ImportError:  # pragma: no cover - the bench extra
    sys.exit("needs opentelemetry-instrumentation-asgi: pip install '.[bench]'")

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
SCOPE: dict[str, Any] = {
    "type": "http", "method": "POST", "path": "/token", "raw_path": b"/token",
    "query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1",
    "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
    "headers": [(b"host", b"127.0.0.1:8000"), (b"traceparent", TRACEPARENT),
                (b"x-request-id", b"req-1")],
}


async def _ok(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(_message: Any) -> None:
    return None


async def _per_request_us(app: Any, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await app(dict(SCOPE), _receive, _send)
    return (time.perf_counter() - started) / n * 1e6


async def _measure(n: int, rounds: int) -> dict[str, dict[str, float]]:
    base = Starlette(routes=[Route("/token", _ok, methods=["POST"])])
    provider = TracerProvider()  # on: spans made, no exporter
    rows: dict[str, dict[str, float]] = {}
    for mode in ("off", "on"):
        tracing.use_tracer_provider(provider if mode == "on" else None)
        apps = {
            "bare app": base,
            "tessera TracingMiddleware": tracing.TracingMiddleware(base),
            "OpenTelemetryMiddleware": OpenTelemetryMiddleware(
                base, exclude_spans=["receive", "send"],
                tracer_provider=provider if mode == "on" else None),
        }
        samples: dict[str, list[float]] = {name: [] for name in apps}
        for app in apps.values():
            await _per_request_us(app, max(200, n // 10))  # warm up
        for _ in range(rounds):  # interleaved: load changes hit every row alike
            for name, app in apps.items():
                samples[name].append(await _per_request_us(app, n))
        rows[mode] = {name: statistics.median(values) for name, values in samples.items()}
    tracing.use_tracer_provider(None)
    return rows


def main() -> None:
    quick = "--quick" in sys.argv
    rows = asyncio.run(_measure(2_000 if quick else 20_000, 3 if quick else 7))
    print(f"{'tracing':8} {'middleware':28} {'µs/request':>11} {'added µs':>9}")
    result: dict[str, Any] = {}
    for mode, row in rows.items():
        bare = row["bare app"]
        for name, us in row.items():
            print(f"{mode:8} {name:28} {us:11.1f} {us - bare:9.1f}")
        ours = row["tessera TracingMiddleware"] - bare
        theirs = row["OpenTelemetryMiddleware"] - bare
        result[f"tessera_added_us_{mode}"] = round(ours, 2)
        result[f"otel_asgi_added_us_{mode}"] = round(theirs, 2)
        result[f"otel_over_tessera_{mode}"] = round(theirs / ours, 2) if ours > 0 else None
    print(json.dumps(result))


if __name__ == "__main__":
    main()
