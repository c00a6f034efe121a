"""Faces at URLs a browser or a CDN may cache forever, and the in-process cache behind them.

- ``GET /v1/models/{name}@{model_id}/faces/{seed}.png[?truncation=]``: one face, pinned to a version;
- ``GET /v1/models/{name}@{model_id}/faces/{seed}/edit.png?Smiling=1.5&Male=-1[&truncation=]``: the face
  moved by those strengths (every other query key is a direction, GET /v1/directions);
- ``GET /faces/{seed}.png``: the default model's (or ``?model=``'s) face: a short-lived redirect to the
  pinned URL, so a swap never leaves stale faces under an immutable header.

A face is a pure function of (model id, seed, truncation, edit), so the pinned URLs answer
``Cache-Control: public, max-age=31536000, immutable`` with a strong ETag computed from exactly those,
before any forward: ``If-None-Match`` answers 304 without rendering. The bytes are those of the POST
routes: ``POST /generate?format=json`` for a seed, ``POST /edit?format=json`` (strength 1 along the
weighted directions) for an edit. A pinned URL whose id is no longer loaded is a 404 naming the current
one: an immutable URL never answers other bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import torch
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.responses import RedirectResponse

from app.compute import encoding
from app.compute.outputs import Text, png_text
from app.errors import GENERATION_ERRORS, invalid
from app.latent_rows import edit_rows
from app.registry.manifest import NAME_PATTERN
from app.registry.params import MODEL_ID_HEADER, ModelQuery
from app.registry.registry import ServedModel
from app.runtime.metrics import Metrics
from app.schemas import DirectionWeight, EditBody, Truncation
from app.web.deps import SECURED, ServingService
from models.latent import SEED_MAX, SeedLatents

router = APIRouter(tags=["faces"])
IMMUTABLE = "public, max-age=31536000, immutable"
REDIRECT_CACHE = "public, max-age=60"  # the alias may move: caches ask again within a minute
MAX_EDIT_TERMS = 8
Name = Annotated[str, Path(pattern=NAME_PATTERN, max_length=64)]
ModelId = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,160}$", description="as GET /v1/models")]
SeedPath = Annotated[int, Path(ge=0, le=SEED_MAX)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    304: {"description": "If-None-Match matched: nothing rendered"},
    404: {"description": "unknown model, or the model is no longer at this id (the message names the current one)"},
    **{c: GENERATION_ERRORS[c] for c in (401, 422, 499, 500, 503, 504)},
}


class FaceCache:
    """Encoded faces by ETag, least recently used first out, at most ``max_bytes`` in all."""

    def __init__(self, max_bytes: int, metrics: Metrics) -> None:
        self.max_bytes, self._metrics = max_bytes, metrics
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self.bytes = 0

    def get(self, key: str) -> bytes | None:
        data = self._items.get(key)
        if data is None:
            self._metrics.face_cache_misses.inc()
            return None
        self._items.move_to_end(key)
        self._metrics.face_cache_hits.inc()
        return data

    def put(self, key: str, data: bytes) -> None:
        if len(data) > self.max_bytes or key in self._items:
            return
        self._items[key] = data
        self.bytes += len(data)
        while self.bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self.bytes -= len(old)
        self._metrics.face_cache_bytes.set(self.bytes)


@dataclass(frozen=True)
class Png:
    """The worker's output for one face: its PNG bytes, with the POST routes' text chunks."""

    text: Text

    def encode(self, images: torch.Tensor) -> bytes:
        return encoding.png(images[0], self.text)


def _cache(request: Request) -> FaceCache:
    cache: FaceCache | None = getattr(request.app.state, "face_cache", None)
    if cache is None:
        service = request.app.state.service
        cache = request.app.state.face_cache = FaceCache(service.settings.face_cache_bytes, service.metrics)
    return cache


def _pinned(request: Request, service: Any, name: str, model_id: str) -> ServedModel:
    served: ServedModel = service.resolve(name, request)
    if served.info.model_id != model_id:
        current = f"/v1/models/{name}@{served.info.model_id}"
        raise HTTPException(404, f"model {name!r} is not at {model_id} any more; it is at {current}")
    return served


def _etag(*parts: Any) -> str:
    return '"' + hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:40] + '"'


async def _answer(request: Request, service: Any, served: ServedModel, tag: str, z: Any, text: Text) -> Response:
    headers = {"ETag": tag, "Cache-Control": IMMUTABLE, MODEL_ID_HEADER: served.info.model_id}
    if tag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)  # known before any forward: nothing rendered
    cache = _cache(request)
    data = cache.get(tag)
    if data is None:
        data = await service.submit(served, z, Png(text), request)
        cache.put(tag, data)
    return Response(data, media_type="image/png", headers=headers)


def _truncation_text(value: float | None) -> str:
    return "none" if value is None else repr(value)


@router.get(
    "/v1/models/{name}@{model_id}/faces/{seed}.png",
    openapi_extra=SECURED,
    responses={200: {"content": {"image/png": {}}}, **_ERRORS},
    response_class=Response,
    summary="A face at a permanent URL",
)
async def face(
    request: Request,
    name: Name,
    model_id: ModelId,
    seed: SeedPath,
    service: ServingService,
    truncation: Annotated[Truncation | None, Query()] = None,
) -> Response:
    """The bytes of ``POST /generate?format=json`` for this seed, cacheable forever."""
    served = _pinned(request, service, name, model_id)
    tag = _etag(served.info.model_id, "face", seed, truncation)
    text = png_text(served.info, "generate", seed=str(seed), truncation=_truncation_text(truncation))
    return await _answer(request, service, served, tag, SeedLatents((seed,), served.info.config.nz, truncation), text)


def _strengths(request: Request) -> list[tuple[str, float]]:
    """``?Smiling=1.5&Male=-1``: every query key but ``truncation`` is a direction; sorted by name."""
    terms = []
    for key, value in request.query_params.multi_items():
        if key == "truncation":
            continue
        try:
            strength = float(value)
        except ValueError:
            strength = math.nan
        if not (math.isfinite(strength) and -10 <= strength <= 10):
            raise invalid(("query", key), f"a direction's strength must be a number in -10..10, got {value!r}")
        terms.append((key, strength))
    if not 1 <= len(dict(terms)) == len(terms) <= MAX_EDIT_TERMS:
        raise invalid(("query",), f"give 1..{MAX_EDIT_TERMS} distinct directions, e.g. ?Smiling=1.5&Male=-1")
    return sorted(terms)


@router.get(
    "/v1/models/{name}@{model_id}/faces/{seed}/edit.png",
    openapi_extra=SECURED,
    responses={200: {"content": {"image/png": {}}}, **_ERRORS},
    response_class=Response,
    summary="An edited face at a permanent URL",
)
async def edited_face(
    request: Request,
    name: Name,
    model_id: ModelId,
    seed: SeedPath,
    service: ServingService,
    truncation: Annotated[Truncation | None, Query()] = None,
) -> Response:
    """``?Smiling=1.5&Male=-1``: the seed's face moved by z + sum(strength * direction); the bytes of
    ``POST /edit`` with those as weighted directions, strength 1, ``format=json``."""
    served = _pinned(request, service, name, model_id)
    terms = _strengths(request)
    weighted = [DirectionWeight(name=n, weight=s) for n, s in terms]
    body = EditBody(seed=seed, direction=weighted, strengths=[1.0], truncation=truncation)
    z = edit_rows(body, served.directions, served.info.config.nz, 1)  # (1, nz); 422 for an unknown direction
    tag = _etag(served.info.model_id, "edit", seed, truncation, terms)
    params = body.model_dump(include={"direction", "keep"}, exclude_defaults=True)
    trunc = _truncation_text(truncation)
    text = png_text(served.info, "edit", seed=str(seed), truncation=trunc, strength=1.0, **params)
    return await _answer(request, service, served, tag, z, text)


@router.get(
    "/faces/{seed}.png",
    openapi_extra=SECURED,
    status_code=307,
    responses={307: {"description": "to the pinned URL"}, **{c: _ERRORS[c] for c in (401, 404, 422, 503)}},
    response_class=RedirectResponse,
    summary="A face of the default model (a redirect to its permanent URL)",
)
async def default_face(
    request: Request,
    seed: SeedPath,
    service: ServingService,
    truncation: Annotated[Truncation | None, Query()] = None,
    model: ModelQuery = None,
) -> RedirectResponse:
    served = service.resolve(model, request)
    url = f"/v1/models/{quote(served.name)}@{served.info.model_id}/faces/{seed}.png"
    query = urlencode({"truncation": truncation} if truncation is not None else {})
    target = request.scope.get("root_path", "") + url + (f"?{query}" if query else "")
    return RedirectResponse(target, status_code=307, headers={"Cache-Control": REDIRECT_CACHE})
