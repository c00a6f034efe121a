"""POST /interpolate: frames along the slerp/lerp path between two seeds or latents."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.errors import GENERATION_ERRORS
from app.latent_rows import interpolation_rows
from app.registry.params import MODEL_ID_HEADER, ModelQuery
from app.schemas import IMAGE_OR_JSON, FrameOut, InterpolateBody, InterpolateOut
from app.web.deps import SECURED, ServingService
from app.web.lean_route import LeanRoute

router = APIRouter(tags=["generate"], route_class=LeanRoute)
MEDIA = {"strip": "image/png", "gif": "image/gif", "webp": "image/webp"}


@router.post(
    "/interpolate",
    openapi_extra=SECURED,
    response_model=InterpolateOut,
    responses={200: IMAGE_OR_JSON, **GENERATION_ERRORS},
    summary="Interpolate between two faces",
)
async def interpolate(
    request: Request, body: InterpolateBody, service: ServingService, model: ModelQuery = None
) -> Response:
    """``strip``: one PNG row of frames; ``gif``/``webp``: an animation that plays forward and back, forever."""
    served = service.resolve(model, request)
    t, z = interpolation_rows(body, served.info.config.nz, service.settings.max_interpolation_steps)  # (T,), (T, nz)
    result = await service.interpolate(served, t, z, body, request)
    headers = {MODEL_ID_HEADER: served.info.model_id}
    if isinstance(result, bytes):  # strip, gif, webp
        return Response(result, media_type=MEDIA[body.format], headers=headers)
    frames = [FrameOut(t=float(w), png=png) for w, png in zip(t, result, strict=True)]
    out = InterpolateOut(model_id=served.info.model_id, method=body.method, frames=frames)
    return JSONResponse(out.model_dump(), headers=headers)
