"""POST /arithmetic: the DCGAN paper's vector arithmetic on concept means (e.g. smiling woman - woman + man)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.errors import GENERATION_ERRORS
from app.latent_rows import arithmetic_rows
from app.registry.params import MODEL_ID_HEADER, ModelQuery
from app.schemas import PNG_OR_JSON, ArithmeticBody, ArithmeticOut, TermOut
from app.web.deps import SECURED, ServingService
from app.web.lean_route import LeanRoute

router = APIRouter(tags=["generate"], route_class=LeanRoute)


@router.post(
    "/arithmetic",
    openapi_extra=SECURED,
    response_model=ArithmeticOut,
    responses={200: PNG_OR_JSON, **GENERATION_ERRORS},
    summary="Latent vector arithmetic",
)
async def arithmetic(
    request: Request, body: ArithmeticBody, service: ServingService, model: ModelQuery = None
) -> Response:
    """Each term is the mean of its exemplars, or a named direction (GET /v1/directions); the result is
    sum(weight * term), shown with jittered neighbours.

    The grid is laid out as the paper's figure: a row of exemplars per exemplar term, a row of their
    means (blank under a direction term), then the result followed by its neighbours.
    """
    served = service.resolve(model, request)
    plan = arithmetic_rows(body, served.directions, served.info.config.nz, service.settings.max_images_per_request)
    result = await service.arithmetic(served, plan, body, request)
    headers = {MODEL_ID_HEADER: served.info.model_id}
    if isinstance(result, bytes):  # format=grid
        return Response(result, media_type="image/png", headers=headers)
    parts = plan.split(result)
    terms = [
        TermOut(name=term.name, weight=term.weight, direction=term.direction, mean=mean, exemplars=list(exemplars))
        for term, mean, exemplars in zip(body.terms, parts.means, parts.exemplars, strict=True)
    ]
    out = ArithmeticOut(
        model_id=served.info.model_id, result=parts.result, neighbours=list(parts.neighbours), terms=terms
    )
    return JSONResponse(out.model_dump(), headers=headers)
