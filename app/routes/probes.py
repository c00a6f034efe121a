"""Probes and metrics: never behind the API key."""

from __future__ import annotations

from pathlib import PurePath

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.deps import EngineDep, ServiceDep
from app.errors import GENERATION_ERRORS
from app.schemas import ModelOut

router = APIRouter(tags=["probes"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: model loaded, warmed up, batcher running",
    responses={503: {"description": "starting (loading, warming up), draining after SIGTERM, or stopping"}},
)
async def readyz(request: Request, service: ServiceDep) -> JSONResponse:
    if service.ready and request.app.state.draining:  # still serving, but take no new traffic
        return JSONResponse({"status": "draining"}, status_code=503)
    status = 200 if service.ready else 503
    return JSONResponse({"status": "ready" if service.ready else service.state}, status_code=status)


@router.get("/v1/model", response_model=ModelOut, responses={503: GENERATION_ERRORS[503]}, summary="The served model")
async def model(service: ServiceDep, engine: EngineDep) -> ModelOut:
    info = engine.info
    return ModelOut(
        model_id=info.model_id,
        sha256=info.sha256,
        file=PurePath(info.path).name,
        config=info.config.to_dict(),
        provenance=info.provenance,
        device=str(engine.device),
        dtype=str(engine.dtype).removeprefix("torch."),
        max_images_per_request=service.settings.max_images_per_request,
        max_batch_images=service.settings.max_batch_images,
        max_interpolation_steps=service.settings.max_interpolation_steps,
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(service: ServiceDep) -> Response:
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)
