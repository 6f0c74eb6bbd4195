"""A relying party's back-channel logout endpoint and an SSF push receiver as their own
process, for crash tests: every arrival is appended (and fsynced) to ``RECEIVER_LOG``
*before* it is answered, then the answer waits ``RECEIVER_DELAY`` seconds — so killing
this process while it waits loses the answer, not the record.

``python _signal_receiver.py PORT`` (env: RECEIVER_LOG, RECEIVER_DELAY)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

LOG = os.environ["RECEIVER_LOG"]
DELAY = float(os.environ.get("RECEIVER_DELAY", "0"))


def _record(kind: str, token: str) -> None:
    with open(LOG, "a") as fh:
        fh.write(json.dumps({"kind": kind, "token": token}) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


async def logout(request: Request) -> Response:
    _record("logout", parse_qs((await request.body()).decode())["logout_token"][0])
    await asyncio.sleep(DELAY)
    return Response(status_code=200)


async def events(request: Request) -> Response:
    _record("set", (await request.body()).decode())
    await asyncio.sleep(DELAY)
    return Response(status_code=202)


async def health(_: Request) -> Response:
    return Response("ok")


app = Starlette(routes=[Route("/rp/logout", logout, methods=["POST"]),
                        Route("/ssf/events", events, methods=["POST"]),
                        Route("/healthz", health)])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
