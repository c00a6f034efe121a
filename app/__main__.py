"""``python -m app`` / ``dcgan-serve``: one uvicorn process on one device (never several workers per GPU).

Settings come from ``DCGAN_*`` variables. The model is checked before uvicorn starts so that a
missing or corrupt checkpoint, or CUDA asked for but absent, ends the process with one clear line.

SIGTERM/SIGINT drain first: ``/readyz`` answers 503 at once while requests are still served for
``DRAIN_S`` (time for a load balancer to notice), then uvicorn's graceful shutdown stops accepting,
lets in-flight requests finish (up to ``GRACEFUL_SHUTDOWN_S``) and runs the lifespan's stop. A
second signal skips the drain.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from app.compute.engine import Engine, StartupError
from app.invert.inverter import Inverter
from app.main import create_app
from app.registry import manifest
from app.runtime.settings import Settings

GRACEFUL_SHUTDOWN_S = 5
DRAIN_S = 2.0  # DRAIN_S + GRACEFUL_SHUTDOWN_S + lifespan stop stays under a 10 s kill timeout


class DrainingServer(uvicorn.Server):
    """uvicorn, but the first exit signal only marks the app draining and shuts down ``drain_s`` later."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_s: float = DRAIN_S) -> None:
        super().__init__(config)
        self.app, self.drain_s = app, drain_s
        self._timer: threading.Timer | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._timer is not None or self.drain_s <= 0:  # second signal (or no drain): shut down now
            super().handle_exit(sig, frame)
            return
        self.app.state.service.drain()  # /readyz -> 503; routes keep serving
        logging.getLogger("app").info(
            "%s: draining for %.1f s, then shutting down", signal.Signals(sig).name, self.drain_s
        )
        self._timer = threading.Timer(self.drain_s, super().handle_exit, (sig, frame))
        self._timer.daemon = True
        self._timer.start()


def _http_protocol() -> type[asyncio.Protocol] | str:
    """httptools (fast) with a bound on the request head when installed, else h11 (bounded by itself)."""
    try:
        from app.web.request_head_limit import BoundedHttpToolsProtocol
    except ImportError:  # httptools not installed
        return "h11"
    return BoundedHttpToolsProtocol


def _settings_error(e: ValidationError) -> str:
    first = e.errors()[0]
    if not first["loc"]:  # a check across fields
        return f"invalid settings: {first['msg']}"
    field = ".".join(str(p) for p in first["loc"])
    return f"invalid setting DCGAN_{field.upper()}: {first['msg']}"


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as e:
        print(f"dcgan-serve: error: {_settings_error(e)}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        served = manifest.resolve(
            settings.checkpoint, settings.models_manifest, settings.models_dir, settings.default_model
        )
        for entry in served.entries.values():  # the lifespan loads them for real
            Engine.preflight(str(entry.path), settings.device, settings.precision, settings.runtime)
        Inverter.preflight(settings, served.entries[served.default].path)  # an encoder that does not fit it
    except (StartupError, manifest.ManifestError) as e:
        alone = settings.models_manifest is None and settings.models_dir is None
        missing = alone and not settings.checkpoint.exists()
        hint = " (set DCGAN_CHECKPOINT; `make train-demo` builds the demo one)" if missing else ""
        print(f"dcgan-serve: error: {e}{hint}", file=sys.stderr)
        return 1
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=_http_protocol(),
        workers=1,
        log_level=settings.log_level,
        access_log=settings.access_log,  # off by default: ~9% of the event loop's time per request at n=1
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    DrainingServer(config, app).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
