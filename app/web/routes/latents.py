"""GET /latents?seeds=1,2,3: the latent vectors behind seeds, for clients doing their own arithmetic."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from app.errors import GENERATION_ERRORS, invalid
from app.registry.params import ModelQuery
from app.schemas import LatentOut, LatentsOut, Truncation
from app.web.deps import SECURED, ServingService
from models.latent import SEED_MAX, latents_for_seeds

router = APIRouter(tags=["latents"])
MAX_SEEDS = 256


def parse_seeds(text: str) -> list[int]:
    """``"1,2,3"`` -> [1, 2, 3]; 422 naming ``seeds`` for anything else."""
    parts = [p.strip() for p in text.split(",")]
    if not 1 <= len(parts) <= MAX_SEEDS:
        raise invalid(("query", "seeds"), f"give 1..{MAX_SEEDS} comma-separated seeds, got {len(parts)}")
    for p in parts:
        if not (p.isascii() and p.isdigit()) or int(p) > SEED_MAX:
            raise invalid(("query", "seeds"), f"each seed must be an integer in 0..{SEED_MAX}, got {p!r}")
    return [int(p) for p in parts]


_ERRORS: dict[int | str, dict[str, Any]] = {
    c: GENERATION_ERRORS[c] for c in (401, 404, 422, 503)
}  # no body, no batcher


@router.get("/latents", response_model=LatentsOut, responses=_ERRORS, summary="Latents of seeds", openapi_extra=SECURED)
async def latents(
    request: Request,
    service: ServingService,
    seeds: Annotated[
        str, Query(min_length=1, max_length=12 * MAX_SEEDS, description="comma-separated seeds, e.g. 1,2,3")
    ],
    truncation: Annotated[Truncation | None, Query()] = None,
    model: ModelQuery = None,
) -> LatentsOut:
    """Exactly the vectors /generate uses: posting them back as ``latents`` renders the same images."""
    served = service.resolve(model, request)
    values, nz = parse_seeds(seeds), served.info.config.nz
    z = latents_for_seeds(values, nz, truncation)  # (N, nz)
    items = [LatentOut(seed=s, latent=row.tolist()) for s, row in zip(values, z, strict=True)]
    return LatentsOut(model_id=served.info.model_id, nz=nz, truncation=truncation, latents=items)
