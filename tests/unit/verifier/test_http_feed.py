"""HttpFeedSource.follow: the identity service's server-sent events, read with httpx-sse —
frames split anywhere, comments skipped, multi-line data joined, the cursor sent as
Last-Event-ID; anything else (HTTP error, not an event stream, bad JSON, resync) is the
follower's SourceUnavailable / ResyncRequired, never a crash."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tessera.core.freshness import Watermark
from tessera.verifier.revocation.follower import FeedBatch, ResyncRequired, SourceUnavailable
from tessera.verifier.revocation.sources import HttpFeedSource

EVENT = {"seq": 8, "kind": "session.revoked", "key": "sid-1", "at": 1.0,
         "expires_at": 600.0, "data": {}}
WATERMARK = {"head": 8, "at": 5.0, "epoch": "e1"}


def source(body: bytes | list[bytes], *, status: int = 200,
           content_type: str = "text/event-stream; charset=utf-8",
           seen: list[httpx.Request] | None = None) -> HttpFeedSource:
    chunks = body if isinstance(body, list) else [body]

    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        async def stream() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        return httpx.Response(status, headers={"content-type": content_type},
                              content=stream())

    return HttpFeedSource("https://id.test/", client_id="svc", client_secret="s",
                          transport=httpx.MockTransport(handle))


async def collect(feed: HttpFeedSource, after: int = 7) -> tuple[list[FeedBatch], Exception]:
    batches: list[FeedBatch] = []
    try:
        async for batch in feed.follow(after):
            batches.append(batch)
    except (SourceUnavailable, ResyncRequired) as exc:
        return batches, exc
    finally:
        await feed.aclose()
    raise AssertionError("follow ended without an error")


async def test_events_and_heartbeats_in_frames_split_anywhere() -> None:
    wire = (b": keep-alive comment\n\n"
            b"id: 8\nevent: revocation\ndata: " + json.dumps(EVENT).encode() + b"\n\n"
            b"event: heartbeat\ndata: {\"seq\": 8,\ndata:  \"watermark\": "
            + json.dumps(WATERMARK).encode() + b"}\n\n")
    seen: list[httpx.Request] = []
    feed = source([wire[i:i + 7] for i in range(0, len(wire), 7)], seen=seen)
    batches, end = await collect(feed)
    assert [list(b) for b in batches] == [[EVENT], []]
    assert batches[0].watermark is None
    assert batches[1].watermark == Watermark(8, 5.0, "e1")
    assert isinstance(end, SourceUnavailable) and str(end) == "feed closed"
    (request,) = seen
    assert request.url == "https://id.test/revocations/events"
    assert request.headers["last-event-id"] == "7"
    assert request.headers["accept"] == "text/event-stream"


async def test_resync_asks_the_follower_to_reload() -> None:
    batches, end = await collect(source(b"event: resync\ndata: {}\n\n"))
    assert batches == [] and isinstance(end, ResyncRequired)


@pytest.mark.parametrize(("answer", "reason"), [
    ({"body": b"", "status": 401, "content_type": "application/json"}, "feed: HTTP 401"),
    ({"body": b"<html>", "content_type": "text/html"}, "feed: SSEError"),
    ({"body": b"event: revocation\ndata: {nope\n\n"}, "feed: malformed event"),
])
async def test_anything_else_is_source_unavailable(answer: dict[str, Any], reason: str) -> None:
    batches, end = await collect(source(**answer))
    assert batches == [] and isinstance(end, SourceUnavailable) and str(end) == reason
