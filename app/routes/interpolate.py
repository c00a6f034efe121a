"""POST /interpolate: frames along the slerp/lerp path between two seeds or latents."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app import responses
from app.deps import AuthorizedService
from app.errors import GENERATION_ERRORS
from app.inputs import interpolation_rows
from app.schemas import InterpolateBody, InterpolateOut

router = APIRouter(tags=["generate"])


@router.post(
    "/interpolate",
    response_model=InterpolateOut,
    responses={200: responses.IMAGE_OR_JSON, **GENERATION_ERRORS},
    summary="Interpolate between two faces",
)
async def interpolate(request: Request, body: InterpolateBody, service: AuthorizedService) -> Response:
    """``strip``: one PNG row of frames; ``gif``/``webp``: an animation that plays forward and back, forever."""
    engine = service.engine  # 503 while loading or stopping
    t, z = interpolation_rows(body, engine.nz, service.settings.max_interpolation_steps)  # (T,), (T, nz)
    if body.format == "strip":
        return responses.png(await service.render(z, request, responses.interpolate_strip(engine, body)))
    frames = await service.render(z, request)  # (T, H, W, C)
    return await responses.interpolate(service.encoder, engine, frames, t, body)
