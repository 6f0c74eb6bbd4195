"""The machine's ceiling for the same request shape: a bare Starlette app that reads the
form body and answers a small JSON document (no auth, no signing, no store), served by
uvicorn with httptools (what ``tessera serve`` runs) or by granian (a Rust HTTP server),
with the same number of workers and the same wrk load as Tessera.

    uvicorn --app-dir bench _baseline:app --workers 2
    granian --interface asgi --working-dir bench _baseline:app --workers 2

Every Tessera figure is also quoted as a fraction of this ceiling.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["app", "server_command"]

_BODY = {"access_token": "x" * 400, "token_type": "Bearer", "expires_in": 300}


async def _post(request: Request) -> Response:
    await request.body()
    return JSONResponse(_BODY, headers={"cache-control": "no-store"})


async def _healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/{path:path}", _post, methods=["POST"]),
                        Route("/healthz", _healthz, methods=["GET"])])


def server_command(server: str, port: int, workers: int) -> list[str] | None:
    """The command line serving ``app`` with ``server`` ("uvicorn" or "granian"), or None
    when that server is not installed."""
    here = str(Path(__file__).resolve().parent)
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "--app-dir", here, "_baseline:app",
                "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    granian = Path(sys.executable).parent / "granian"
    found = str(granian) if granian.exists() else shutil.which("granian")
    if server == "granian" and found:
        return [found, "--interface", "asgi", "--working-dir", here, "--host", "127.0.0.1",
                "--port", str(port), "--workers", str(workers), "--no-access-log",
                "--log-level", "warning", "_baseline:app"]
    return None
