"""POST /invert: a photo in (multipart field ``image``), its aligned crop, latent and reconstruction out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from app.errors import INVERT_ERRORS
from app.invert.flow import DEFAULT_MODE, QueryOptions, handle
from app.invert.upload import IMAGE_FIELD
from app.schemas import InvertMode, InvertOut
from app.web.deps import SECURED, ServingService

router = APIRouter(tags=["invert"])

_FORM: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [IMAGE_FIELD],
                "properties": {
                    IMAGE_FIELD: {"type": "string", "format": "binary", "description": "JPEG, PNG, WebP or still GIF"},
                    "mode": {"type": "string", "enum": ["fast", "faithful"]},
                    "steps": {"type": "integer", "minimum": 0, "maximum": 5000},
                    "align": {"type": "boolean"},
                },
            }
        }
    },
}


@router.post(
    "/invert",
    openapi_extra={**SECURED, "requestBody": _FORM},
    response_model=InvertOut,
    responses=INVERT_ERRORS,
    summary="Invert a photo: its latent, aligned crop and reconstruction",
)
async def invert(
    request: Request,
    service: ServingService,
    mode: Annotated[
        InvertMode | None, Query(description=f"fast: encoder only; faithful (default {DEFAULT_MODE}): refined")
    ] = None,
    steps: Annotated[
        int | None, Query(ge=0, le=5000, description="faithful's optimiser steps (default and max: settings)")
    ] = None,
    align: Annotated[
        bool | None, Query(description="false: the photo is already an aligned square crop (default true)")
    ] = None,
) -> JSONResponse:
    """The photo is decoded, its largest face aligned as CelebA's are, then inverted. The ``latent`` works as
    it is in /generate (``latents``), /edit (``latent``), /interpolate (``latent_a``/``latent_b``) and
    /arithmetic (a term's ``latents``). Options go in the query or as form fields (not both). Limits:
    DCGAN_INVERT_* settings (upload bytes, pixels, steps, concurrency, queue, deadline)."""
    out = await handle(await service.default_inverter(), request, QueryOptions(mode, steps, align), service.metrics)
    return JSONResponse(out.model_dump())
