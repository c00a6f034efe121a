"""``python -m bench.bare_server --kind fastapi``: the HTTP floor, a server that does nothing but answer.

The same uvicorn (httptools, uvloop, no access log) and the same request as the ``n1`` workload
(``POST /generate?n=1&seed=S``), answered at once with a fixed 1 KB PNG: no batcher, no model. With
``--kind fastapi`` the route is a FastAPI one taking ``n`` and ``seed`` as validated query parameters;
with ``--kind starlette`` a bare Starlette route. ``bench/ceiling.py --floors`` measures both beside
the real server, so its event-loop CPU per request has a scale measured the same day.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Annotated

import uvicorn
from fastapi import FastAPI, Query
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

BODY = b"\x89PNG\r\n\x1a\n" + bytes(1024)


def fastapi_app() -> FastAPI:
    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})

    @app.post("/generate")
    async def generate(n: Annotated[int, Query(ge=1, le=64)] = 1, seed: Annotated[int, Query(ge=0)] = 0) -> Response:
        return Response(BODY, media_type="image/png")

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app


def starlette_app() -> Starlette:
    async def generate(request: Request) -> Response:
        int(request.query_params.get("n", "1")), int(request.query_params.get("seed", "0"))
        return Response(BODY, media_type="image/png")

    async def readyz(request: Request) -> Response:
        return JSONResponse({"status": "ready"})

    return Starlette(routes=[Route("/generate", generate, methods=["POST"]), Route("/readyz", readyz)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=["fastapi", "starlette"], default="fastapi")
    args = parser.parse_args()
    app = fastapi_app() if args.kind == "fastapi" else starlette_app()
    port = int(os.environ.get("DCGAN_PORT", "8000"))
    uvicorn.run(app, host="127.0.0.1", port=port, http="httptools", loop="uvloop", access_log=False, log_level="error")
    return 0


if __name__ == "__main__":
    sys.exit(main())
