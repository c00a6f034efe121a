"""GET /v1/models: what the registry serves; and the 404 an unknown model name answers."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.errors import GENERATION_ERRORS
from app.registry.registry import ServedModel, UnknownModel
from app.web.deps import AcceptingService

router = APIRouter(tags=["models"])
PROVENANCE_SUMMARY = ("dataset", "steps", "ema", "bn_recalibrated", "created_at", "code_version", "terms")


class ModelEntryOut(BaseModel):
    name: str
    model_id: str = Field(description="the file's name and content digest; pinned URLs hold it")
    sha256: str
    file: str  # the export's file name; the server's directories are not disclosed
    default: bool
    config: dict[str, int]
    directions: list[str]
    provenance: dict[str, Any] = Field(description="dataset, steps, EMA, dates, terms")
    quality: dict[str, Any] = Field(description="the export's own quality figures (e.g. SWD x 10^3), if any")
    format_version: str
    loaded_at: float


class ModelsOut(BaseModel):
    default: str
    max_loaded_models: int
    models: list[ModelEntryOut]


def describe(model: ServedModel, default: str) -> ModelEntryOut:
    info = model.info
    return ModelEntryOut(
        name=model.name,
        model_id=info.model_id,
        sha256=info.sha256,
        file=PurePath(info.path).name,
        default=model.name == default,
        config=info.config.to_dict(),
        directions=list(model.directions),
        provenance={k: info.provenance[k] for k in PROVENANCE_SUMMARY if k in info.provenance},
        quality=info.provenance.get("quality") or {},
        format_version=info.format_version,
        loaded_at=model.loaded_at,
    )


@router.get("/v1/models", response_model=ModelsOut, responses={503: GENERATION_ERRORS[503]}, summary="Loaded models")
async def models(service: AcceptingService) -> ModelsOut:
    """Every loaded model by name: its id (content digest), config, directions, provenance and quality;
    ``default`` marks the one a request without ``model=`` gets."""
    registry = service.registry
    entries = [describe(m, registry.default) for _, m in sorted(registry.models.items())]
    return ModelsOut(default=registry.default, max_loaded_models=registry.max_loaded, models=entries)


def install(app: FastAPI) -> None:
    """An unknown ``model=`` is a 404 listing the loaded names (a name that is not plain is the query's 422)."""

    async def unknown_model(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    app.add_exception_handler(UnknownModel, unknown_model)
