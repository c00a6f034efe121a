"""Semantic editing: GET /v1/directions (what a face can be moved along) and POST /edit (move it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.errors import GENERATION_ERRORS
from app.latent_rows import edit_rows
from app.registry.params import MODEL_ID_HEADER, ModelQuery
from app.schemas import IMAGE_OR_JSON, DirectionOut, DirectionsOut, EditBody, EditFrameOut, EditOut
from app.web.deps import SECURED, AcceptingService, ServingService
from app.web.lean_route import LeanRoute
from app.web.routes.interpolate import MEDIA

router = APIRouter(tags=["edit"], route_class=LeanRoute)
_DIRECTIONS_ERRORS: dict[int | str, dict[str, Any]] = {c: GENERATION_ERRORS[c] for c in (404, 422, 503)}


@router.get("/v1/directions", response_model=DirectionsOut, responses=_DIRECTIONS_ERRORS, summary="Edit directions")
async def directions(request: Request, service: AcceptingService, model: ModelQuery = None) -> Response:
    """The served model's directions: ``attribute`` ones fitted to CelebA's labels (InterFaceGAN), if the
    export carries them, and ``sefa-0``... found from the weights alone (SeFa), for every generator."""
    served = service.resolve(model, request)
    out = [
        DirectionOut(
            name=d.name,
            kind=d.kind,  # type: ignore[arg-type]  # checked at load: attribute | sefa
            separation=d.separation,
            source=d.source,
            correlates_with=d.correlates_with,
            cosine=None if d.cosine is None else round(d.cosine, 4),
        )
        for d in served.directions.values()
    ]
    info = served.info
    return JSONResponse(DirectionsOut(model_id=info.model_id, nz=info.config.nz, directions=out).model_dump())


@router.post(
    "/edit",
    openapi_extra=SECURED,
    response_model=EditOut,
    responses={200: IMAGE_OR_JSON, **GENERATION_ERRORS},
    summary="Move a face along a direction",
)
async def edit(request: Request, body: EditBody, service: ServingService, model: ModelQuery = None) -> Response:
    """One frame per strength (in sigma) along a named direction or a weighted sum of several, with
    ``keep`` directions projected out. Strength 0 is the plain face, byte for byte."""
    limit = service.settings.max_images_per_request
    served = service.resolve(model, request)
    z = edit_rows(body, served.directions, served.info.config.nz, limit)  # (S, nz)
    result = await service.edit(served, z, body, request)
    headers = {MODEL_ID_HEADER: served.info.model_id}
    if isinstance(result, bytes):  # strip, gif, webp
        return Response(result, media_type=MEDIA[body.format], headers=headers)
    frames = [EditFrameOut(strength=s, png=png) for s, png in zip(body.strengths, result, strict=True)]
    return JSONResponse(EditOut(model_id=served.info.model_id, frames=frames).model_dump(), headers=headers)
