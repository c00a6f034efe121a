"""``create_app(settings)``: the app factory. Nothing heavy happens here; the lifespan loads the model."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.telemetry import TelemetryConfig

from app import errors
from app.registry import admin, faces, sighup
from app.registry import routes as registry_routes
from app.runtime.gc_tuning import frozen_startup_heap
from app.runtime.metrics import HttpMetricsMiddleware, Metrics
from app.runtime.settings import Settings
from app.service import Service
from app.web import docs
from app.web.lean_app import LeanApp
from app.web.lean_route import LeanConfig, fastapi_unknown
from app.web.routes import arithmetic, edit, generate, interpolate, invert, latents, probes

log = logging.getLogger("app.main")
STATIC = Path(__file__).resolve().parent / "static"
# Off unless DCGAN_OPENTELEMETRY: otherwise FastAPI looks up three OpenTelemetry providers on every
# request (3% of the event loop's time at n=1) to find none configured; /metrics is Prometheus.
_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the lifespan loads and warms the model, then starts the batcher (then /readyz is 200)."""
    settings = settings if settings is not None else Settings()
    metrics = Metrics()
    service = Service(settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await service.start()
            with frozen_startup_heap(), sighup.reloads(service):  # SIGHUP re-reads the manifest
                yield
        finally:
            await service.stop()

    app = LeanApp(
        title="dcgan-faces",
        summary="Synthetic faces from a DCGAN: generate, interpolate, vector arithmetic, semantic edits; batched.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # docs.install serves /docs without a CDN
        redoc_url=None,
        telemetry=None if settings.opentelemetry else _NO_TELEMETRY,
    )
    app.state.service = service  # `python -m app` calls service.drain() on SIGTERM
    # The body cap of the LeanRoutes, the only routes that read a body; with OpenTelemetry they take
    # FastAPI's own path, which it traces step by step.
    unknown = fastapi_unknown()
    if unknown is not None:
        log.warning("%s: the generation routes take FastAPI's own path (same answers, slower)", unknown)
    stock = settings.opentelemetry or unknown is not None
    app.state.lean = LeanConfig(max_body_bytes=settings.max_body_bytes, stock=stock)
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    errors.install(app, metrics)
    registry_routes.install(app)
    for module in (generate, interpolate, arithmetic, edit, invert, latents, probes, registry_routes, admin, faces):
        app.router.routes.extend(module.router.routes)  # not include_router: it re-wraps every route per request
    docs.install(app)
    _static(app)
    return app


def _static(app: FastAPI) -> None:
    """The playground: ``/`` is ``app/static/index.html``, its assets under ``/static``."""
    index = STATIC / "index.html"
    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        if index.is_file():
            return FileResponse(index)
        return HTMLResponse('<p>dcgan-faces: see <a href="/docs">/docs</a></p>')
