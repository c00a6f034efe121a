"""Rendered images (N, H, W, C) uint8 -> HTTP responses: PNG grids, animations or JSON with base64 PNGs.

Every PNG carries its provenance as text chunks (``dcgan:model_id``, ``dcgan:sha256``, the seed,
the truncation and the endpoint's parameters). A single image's chunks hold only what determines
its pixels, so the same seed gives the same bytes whatever else the request asked for.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from fastapi import Response
from fastapi.responses import JSONResponse

from app import imaging
from app.engine import Engine
from app.imaging import Encoder
from app.inputs import ArithmeticPlan
from app.schemas import (
    ArithmeticBody,
    ArithmeticOut,
    FrameOut,
    GenerateOut,
    ImageOut,
    InterpolateBody,
    InterpolateOut,
    TermOut,
)

# For OpenAPI: the image media types a route can answer with.
PNG_OR_JSON: dict[str, Any] = {"content": {"image/png": {}}, "description": "PNG grid, or JSON with format=json"}
IMAGE_OR_JSON: dict[str, Any] = {
    "content": {"image/png": {}, "image/gif": {}, "image/webp": {}},
    "description": "PNG strip, animated GIF/WebP, or JSON with format=json",
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _trunc(truncation: float | None) -> str:
    return "none" if truncation is None else repr(truncation)


def provenance(engine: Engine, endpoint: str, **params: Any) -> dict[str, str]:
    """PNG text chunks: the model, the endpoint and its parameters."""
    text = {"dcgan:model_id": engine.info.model_id, "dcgan:sha256": engine.info.sha256, "dcgan:endpoint": endpoint}
    text.update({f"dcgan:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in params.items()})
    return text


async def _pngs(encoder: Encoder, images: torch.Tensor, texts: list[dict[str, str]]) -> list[str]:
    encoded = await asyncio.gather(
        *(encoder.run(imaging.png, img, text) for img, text in zip(images, texts, strict=True))
    )
    return [_b64(data) for data in encoded]


def png(data: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(data, media_type="image/png", headers=headers)


def _grid_png(images: torch.Tensor, text: dict[str, str], cols: int | None = None) -> bytes:
    return imaging.png(imaging.grid(images, cols), text)


def _seed_text(seeds: list[int] | None, n: int) -> list[str]:
    return [str(s) for s in seeds] if seeds is not None else ["client-latent"] * n


def generate_grid(
    engine: Engine, seeds: list[int] | None, truncation: float | None, n: int
) -> tuple[Callable[[torch.Tensor], bytes], dict[str, str]]:
    """A /generate grid: its encoding as a ``finish`` for ``Service.render`` (the PNG is made in the
    generator's worker right after the forward, off the event loop), and the response headers."""
    seed_text = _seed_text(seeds, n)
    text = provenance(engine, "generate", seeds=",".join(seed_text), truncation=_trunc(truncation), n=n)
    headers = {"X-Model-Id": engine.info.model_id}
    if seeds is not None:
        headers["X-Seeds"] = ",".join(seed_text)
    return partial(_grid_png, text=text), headers


async def generate_json(
    encoder: Encoder, engine: Engine, images: torch.Tensor, seeds: list[int] | None, truncation: float | None
) -> Response:
    seed_text = _seed_text(seeds, images.shape[0])
    texts = [provenance(engine, "generate", seed=s, truncation=_trunc(truncation)) for s in seed_text]
    pngs = await _pngs(encoder, images, texts)
    items = [ImageOut(seed=None if seeds is None else seeds[i], png=p) for i, p in enumerate(pngs)]
    return JSONResponse(GenerateOut(model_id=engine.info.model_id, truncation=truncation, images=items).model_dump())


def _interpolate_text(engine: Engine, body: InterpolateBody) -> dict[str, str]:
    params = body.model_dump(exclude={"latent_a", "latent_b", "format"}, exclude_none=True)
    return provenance(engine, "interpolate", **params)


def interpolate_strip(engine: Engine, body: InterpolateBody) -> Callable[[torch.Tensor], bytes]:
    """The ``strip`` format's PNG (one row of frames) as a ``finish`` for ``Service.render``."""
    return partial(_grid_png, text=_interpolate_text(engine, body), cols=body.steps)


async def interpolate(
    encoder: Encoder, engine: Engine, frames: torch.Tensor, t: torch.Tensor, body: InterpolateBody
) -> Response:
    """The ``json``, ``gif`` and ``webp`` formats (``strip`` goes through ``interpolate_strip``)."""
    text = _interpolate_text(engine, body)
    if body.format == "json":
        pngs = await _pngs(encoder, frames, [{**text, "dcgan:t": repr(float(w))} for w in t])
        out = [FrameOut(t=float(w), png=p) for w, p in zip(t, pngs, strict=True)]
        return JSONResponse(InterpolateOut(model_id=engine.info.model_id, method=body.method, frames=out).model_dump())
    comment = json.dumps(text, sort_keys=True)
    data = await encoder.run(imaging.animation, frames, body.format, body.frame_ms, comment)
    return Response(data, media_type=f"image/{body.format}")


async def arithmetic(
    encoder: Encoder, engine: Engine, images: torch.Tensor, plan: ArithmeticPlan, body: ArithmeticBody
) -> Response:
    """Grid as the paper's figure: one row of exemplars per term, a row of their means, the result row."""
    exemplars = list(images.split([*plan.exemplar_counts, images.shape[0] - sum(plan.exemplar_counts)]))
    rest = exemplars.pop()  # (terms + 1 + K, H, W, C)
    n_terms = len(plan.exemplar_counts)
    means, result_row = rest[:n_terms], rest[n_terms:]  # result first, then its neighbours
    params = {"terms": [[t.name, t.weight] for t in body.terms], "seed": body.seed, "jitter": body.jitter}
    text = provenance(engine, "arithmetic", **params)
    if body.format == "json":
        pngs = await _pngs(encoder, images, [text] * images.shape[0])
        k = sum(plan.exemplar_counts)
        starts = [sum(plan.exemplar_counts[:i]) for i in range(n_terms)]
        terms = [
            TermOut(name=t.name, weight=t.weight, mean=pngs[k + i], exemplars=pngs[start : start + count])
            for i, (t, start, count) in enumerate(zip(body.terms, starts, plan.exemplar_counts, strict=True))
        ]
        result, neighbours = pngs[k + n_terms], pngs[k + n_terms + 1 :]
        out = ArithmeticOut(model_id=engine.info.model_id, result=result, neighbours=neighbours, terms=terms)
        return JSONResponse(out.model_dump())
    rows: list[list[torch.Tensor | None]] = [list(e) for e in exemplars] + [list(means), list(result_row)]
    return png(await encoder.run(lambda: imaging.png(imaging.tile(rows), text)))
