"""Probes and metrics: never behind the API key."""

from __future__ import annotations

from pathlib import PurePath

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.errors import GENERATION_ERRORS
from app.schemas import ModelOut
from app.web.deps import AcceptingService, ServiceDep

router = APIRouter(tags=["probes"])


@router.get(
    "/healthz",
    summary="Liveness: the process answers and its device works",
    responses={500: {"description": "a CUDA error left the device unusable: replace this process"}},
)
async def healthz(service: ServiceDep) -> JSONResponse:
    """200 while the process can serve; 500 once its device is lost, so a liveness probe restarts it."""
    if service.state == "failed":
        return JSONResponse({"status": "failed", "detail": service.failure}, status_code=500)
    return JSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    summary="Readiness: model loaded, warmed up, batcher running",
    responses={503: {"description": "starting (loading, warming up), draining after SIGTERM, stopping, or failed"}},
)
async def readyz(service: ServiceDep) -> JSONResponse:
    """200 only when ``ready``; ``draining`` still serves requests but asks for no new traffic."""
    ready = service.state == "ready" and service.accepting
    return JSONResponse({"status": service.state}, status_code=200 if ready else 503)


@router.get("/v1/model", response_model=ModelOut, responses={503: GENERATION_ERRORS[503]}, summary="The served model")
async def model(service: AcceptingService) -> ModelOut:
    engine = service.engine
    info = engine.info
    return ModelOut(
        model_id=info.model_id,
        sha256=info.sha256,
        file=PurePath(info.path).name,
        config=info.config.to_dict(),
        provenance=info.provenance,
        device=str(engine.device),
        dtype=str(engine.dtype).removeprefix("torch."),
        precision=info.precision,
        runtime=info.runtime,
        max_images_per_request=service.settings.max_images_per_request,
        max_batch_images=service.settings.max_batch_images,
        max_interpolation_steps=service.settings.max_interpolation_steps,
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(service: ServiceDep) -> Response:
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)
