"""POST /generate: n faces from seeds (consecutive from ?seed=, random, or a body list) or raw latents."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from app import responses
from app.deps import AuthorizedService
from app.errors import GENERATION_ERRORS
from app.inputs import generate_rows
from app.schemas import HARD_MAX_ROWS, GenerateBody, GenerateOut, Truncation
from models.latent import SEED_MAX

router = APIRouter(tags=["generate"])


@router.post(
    "/generate",
    response_model=GenerateOut,
    responses={200: responses.PNG_OR_JSON, **GENERATION_ERRORS},
    summary="Generate n faces",
)
async def generate(
    request: Request,
    service: AuthorizedService,
    n: Annotated[int | None, Query(ge=1, le=HARD_MAX_ROWS, description="images (default 16; max per settings)")] = None,
    seed: Annotated[int | None, Query(ge=0, le=SEED_MAX, description="first seed: images are seed..seed+n-1")] = None,
    truncation: Annotated[Truncation | None, Query()] = None,
    format: Annotated[Literal["grid", "json"], Query(description="grid: one PNG, seeds in X-Seeds")] = "grid",
    body: GenerateBody | None = None,
) -> Response:
    """Without ``seed`` or a body, random seeds are drawn and returned (X-Seeds header or JSON)."""
    engine, limit = service.engine, service.settings.max_images_per_request  # 503 while loading or stopping
    seeds, z = generate_rows(n, seed, truncation, body, limit, engine.nz)  # (n, nz)
    if format == "grid":
        encode, headers = responses.generate_grid(engine, seeds, truncation, z.shape[0])
        return responses.png(await service.render(z, request, encode), headers)  # PNG made in the worker
    images = await service.render(z, request)  # (n, H, W, C) uint8
    return await responses.generate_json(service.encoder, engine, images, seeds, truncation)
