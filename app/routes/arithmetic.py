"""POST /arithmetic: the DCGAN paper's vector arithmetic on concept means (e.g. smiling woman - woman + man)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app import responses
from app.deps import AuthorizedService
from app.errors import GENERATION_ERRORS
from app.inputs import arithmetic_rows
from app.schemas import ArithmeticBody, ArithmeticOut

router = APIRouter(tags=["generate"])


@router.post(
    "/arithmetic",
    response_model=ArithmeticOut,
    responses={200: responses.PNG_OR_JSON, **GENERATION_ERRORS},
    summary="Latent vector arithmetic",
)
async def arithmetic(request: Request, body: ArithmeticBody, service: AuthorizedService) -> Response:
    """Each term is the mean of its exemplars; the result is sum(weight * mean), shown with jittered neighbours.

    The grid is laid out as the paper's figure: a row of exemplars per term, a row of their means,
    then the result followed by its neighbours.
    """
    engine = service.engine  # 503 while loading or stopping
    plan = arithmetic_rows(body, engine.nz, service.settings.max_images_per_request)
    images = await service.render(plan.z, request)  # exemplars, means, result, neighbours
    return await responses.arithmetic(service.encoder, engine, images, plan, body)
