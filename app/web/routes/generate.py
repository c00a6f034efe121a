"""POST /generate: n faces from seeds (consecutive from ?seed=, random, or a body list) or raw latents."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from app.errors import GENERATION_ERRORS
from app.latent_rows import generate_rows
from app.registry.params import MODEL_ID_HEADER, ModelQuery
from app.schemas import HARD_MAX_ROWS, PNG_OR_JSON, GenerateBody, GenerateOut, ImageOut, Truncation
from app.web.deps import SECURED, ServingService
from app.web.lean_route import LeanRoute
from models.latent import SEED_MAX

router = APIRouter(tags=["generate"], route_class=LeanRoute)


@router.post(
    "/generate",
    openapi_extra=SECURED,
    response_model=GenerateOut,
    responses={200: PNG_OR_JSON, **GENERATION_ERRORS},
    summary="Generate n faces",
)
async def generate(
    request: Request,
    service: ServingService,
    n: Annotated[int | None, Query(ge=1, le=HARD_MAX_ROWS, description="images (default 16; max per settings)")] = None,
    seed: Annotated[int | None, Query(ge=0, le=SEED_MAX, description="first seed: images are seed..seed+n-1")] = None,
    truncation: Annotated[Truncation | None, Query()] = None,
    format: Annotated[Literal["grid", "json"], Query(description="grid: one PNG, seeds in X-Seeds")] = "grid",
    body: GenerateBody | None = None,
    model: ModelQuery = None,
) -> Response:
    """Without ``seed`` or a body, random seeds are drawn and returned (X-Seeds header or JSON)."""
    served = service.resolve(model, request)
    limit, nz = service.settings.max_images_per_request, served.info.config.nz
    seeds, z = generate_rows(n, seed, truncation, body, limit, nz)  # (n, nz)
    result = await service.generate(served, seeds, z, truncation, format, request)
    model_id = served.info.model_id
    if isinstance(result, bytes):  # format=grid
        headers = {MODEL_ID_HEADER: model_id} | ({"X-Seeds": ",".join(map(str, seeds))} if seeds is not None else {})
        return Response(result, media_type="image/png", headers=headers)
    images = [ImageOut(seed=None if seeds is None else seeds[i], png=png) for i, png in enumerate(result)]
    out = GenerateOut(model_id=model_id, truncation=truncation, images=images)
    return JSONResponse(out.model_dump(), headers={MODEL_ID_HEADER: model_id})
