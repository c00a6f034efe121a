"""Request and response bodies. Every body forbids unknown fields, is strict about JSON types (no "1"
for 1, no false for 0.0) and bounds every number, so bad input is a 422 whose ``loc`` names the
field. Limits that depend on the settings or the model (n, steps, latent length) are checked in
``app.latent_rows`` with the same error shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from models.latent import SEED_MAX

LATENT_ABS_MAX = 100.0  # a N(0, 1) component beyond 100 sigma is not a latent, it is an overflow waiting to happen
HARD_MAX_ROWS = 1024  # parse-time cap on list lengths; the configured caps (settings) are lower
MAX_TERMS = 8
MAX_EXEMPLARS = 8
MAX_NEIGHBOURS = 16
T = TypeVar("T")

# For OpenAPI: the media types a route can answer 200 with.
PNG_OR_JSON: dict[str, Any] = {"content": {"image/png": {}}, "description": "PNG grid, or JSON with format=json"}
IMAGE_OR_JSON: dict[str, Any] = {
    "content": {"image/png": {}, "image/gif": {}, "image/webp": {}},
    "description": "PNG strip, animated GIF/WebP, or JSON with format=json",
}

Seed = Annotated[int, Field(strict=True, ge=0, le=SEED_MAX, description=f"0..{SEED_MAX}")]
LatentValue = Annotated[float, Field(strict=True, ge=-LATENT_ABS_MAX, le=LATENT_ABS_MAX, allow_inf_nan=False)]
Latent = Annotated[list[LatentValue], Field(min_length=1, max_length=HARD_MAX_ROWS, description="exactly nz floats")]
_TRUNCATION = "redraw latent components with |z| above this (smaller: more typical faces)"
Truncation = Annotated[float, Field(ge=0.1, le=10.0, allow_inf_nan=False, description=_TRUNCATION)]  # query strings
DirectionName = Annotated[str, Field(min_length=1, max_length=64, description="e.g. Smiling or sefa-0")]
Strength = Annotated[float, Field(strict=True, ge=-10.0, le=10.0, allow_inf_nan=False)]
StrictTruncation = Annotated[float, Field(strict=True, ge=0.1, le=10.0, allow_inf_nan=False, description=_TRUNCATION)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _exactly_one(info: ValidationInfo, first: str, value: T, second: str) -> T:
    """A field validator on ``second`` (declared after ``first``, ``validate_default=True``): exactly one of the
    two is given, and the 422's ``loc`` names ``second``. A ``first`` that failed its own validation is
    absent from ``info.data``: its own error says enough."""
    if first in info.data and (info.data[first] is None) == (value is None):
        raise ValueError(f"give exactly one of {first} or {second}")
    return value


class GenerateBody(_Body):
    """Explicit seeds or raw latents instead of ``?seed=``; give exactly one of the two."""

    seeds: list[Seed] | None = Field(default=None, min_length=1, max_length=HARD_MAX_ROWS)
    latents: list[Latent] | None = Field(default=None, min_length=1, max_length=HARD_MAX_ROWS, validate_default=True)

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"seeds": [1, 2, 3, 42]}]})

    @field_validator("latents")
    @classmethod
    def _one_source(cls, latents: list[list[float]] | None, info: ValidationInfo) -> list[list[float]] | None:
        return _exactly_one(info, "seeds", latents, "latents")


class InterpolateBody(_Body):
    """Two endpoints (seed or latent each), the number of frames, the path and the output format."""

    seed_a: Seed | None = None
    seed_b: Seed | None = None
    latent_a: Latent | None = Field(default=None, validate_default=True)
    latent_b: Latent | None = Field(default=None, validate_default=True)
    steps: int = Field(default=8, strict=True, ge=2, le=256, description="frames, endpoints included")
    method: Literal["slerp", "lerp"] = "slerp"
    format: Literal["strip", "gif", "webp", "json"] = "strip"
    truncation: StrictTruncation | None = None
    frame_ms: int = Field(default=80, strict=True, ge=20, le=2000, description="frame duration of gif/webp")

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"seed_a": 1, "seed_b": 2, "steps": 8, "method": "slerp"}]}
    )

    @field_validator("latent_a", "latent_b")
    @classmethod
    def _one_source_per_end(cls, latent: list[float] | None, info: ValidationInfo) -> list[float] | None:
        end = str(info.field_name)[-1]
        return _exactly_one(info, f"seed_{end}", latent, f"latent_{end}")


class Term(_Body):
    """One concept: the mean of its exemplars (seeds or latents), or a named direction, times a signed weight."""

    name: str = Field(min_length=1, max_length=64, description="label, e.g. 'smiling woman'")
    weight: float = Field(strict=True, ge=-10.0, le=10.0, allow_inf_nan=False)
    seeds: list[Seed] | None = Field(default=None, min_length=1, max_length=MAX_EXEMPLARS)
    latents: list[Latent] | None = Field(default=None, min_length=1, max_length=MAX_EXEMPLARS)
    direction: DirectionName | None = Field(
        default=None, validate_default=True, description="a unit direction (GET /v1/directions): weight in sigma"
    )

    @field_validator("direction")
    @classmethod
    def _one_source(cls, direction: str | None, info: ValidationInfo) -> str | None:
        sources = (info.data.get("seeds"), info.data.get("latents"), direction)
        if {"seeds", "latents"} <= info.data.keys() and sum(s is not None for s in sources) != 1:
            raise ValueError("give exactly one of seeds, latents or direction")
        return direction


class ArithmeticBody(_Body):
    """The DCGAN paper's vector arithmetic: sum of weight * mean(exemplars), plus jittered neighbours."""

    terms: list[Term] = Field(min_length=1, max_length=MAX_TERMS)
    neighbours: int = Field(
        default=8, strict=True, ge=0, le=MAX_NEIGHBOURS, description="jittered results besides the result"
    )
    jitter: float = Field(
        default=0.25, strict=True, ge=0.0, le=2.0, allow_inf_nan=False, description="std of the neighbours' noise"
    )
    seed: Seed = Field(default=0, description="seeds the neighbours' noise")
    truncation: StrictTruncation | None = None
    format: Literal["grid", "json"] = "grid"

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "terms": [
                        {"name": "smiling woman", "weight": 1, "seeds": [11, 12, 13]},
                        {"name": "neutral woman", "weight": -1, "seeds": [21, 22, 23]},
                        {"name": "neutral man", "weight": 1, "seeds": [31, 32, 33]},
                    ],
                    "neighbours": 8,
                }
            ]
        },
    )


class DirectionWeight(_Body):
    """One named direction and its weight in a combined edit."""

    name: DirectionName
    weight: float = Field(default=1.0, strict=True, ge=-10.0, le=10.0, allow_inf_nan=False)


class EditBody(_Body):
    """A face (seed or latent) moved along a direction by each strength: z + strength * sum(weight * n)."""

    seed: Seed | None = None
    latent: Latent | None = Field(default=None, validate_default=True)
    direction: DirectionName | list[DirectionWeight] = Field(
        description="a name from GET /v1/directions, or several {name, weight} whose weighted sum is the direction"
    )
    keep: list[DirectionName] = Field(
        default=[], max_length=MAX_TERMS, description="directions held fixed (projected out): smile, keep gender"
    )
    strengths: list[Strength] = Field(
        default=[-2.0, -1.0, 0.0, 1.0, 2.0], min_length=1, max_length=HARD_MAX_ROWS, description="in sigma"
    )
    truncation: StrictTruncation | None = None
    format: Literal["strip", "gif", "webp", "json"] = "strip"
    frame_ms: int = Field(default=120, strict=True, ge=20, le=2000, description="frame duration of gif/webp")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"seed": 7, "direction": "Smiling", "strengths": [-2, -1, 0, 1, 2]}]},
    )

    @field_validator("latent")
    @classmethod
    def _one_source(cls, latent: list[float] | None, info: ValidationInfo) -> list[float] | None:
        return _exactly_one(info, "seed", latent, "latent")


class DirectionOut(BaseModel):
    name: str
    kind: Literal["attribute", "sefa"]
    separation: float | None = Field(description="attribute: held-out accuracy of its boundary; sefa: eigenvalue share")
    source: str
    correlates_with: str | None = Field(description="sefa: the attribute direction with the largest |cosine|")
    cosine: float | None


class DirectionsOut(BaseModel):
    model_id: str
    nz: int
    directions: list[DirectionOut]


class EditFrameOut(BaseModel):
    strength: float
    png: str = Field(description="base64 PNG; strength 0 is byte-identical to the plain face of /generate")


class EditOut(BaseModel):
    model_id: str
    frames: list[EditFrameOut]


class ImageOut(BaseModel):
    seed: int | None = Field(description="null when the image came from a client latent")
    png: str = Field(description="base64 PNG")


class GenerateOut(BaseModel):
    model_id: str
    truncation: float | None
    images: list[ImageOut]


class FrameOut(BaseModel):
    t: float
    png: str


class InterpolateOut(BaseModel):
    model_id: str
    method: str
    frames: list[FrameOut]


class TermOut(BaseModel):
    name: str
    weight: float
    direction: str | None = Field(default=None, description="the direction of a direction term")
    mean: str | None = Field(description="base64 PNG of the mean latent (null for a direction term)")
    exemplars: list[str]


class ArithmeticOut(BaseModel):
    model_id: str
    result: str = Field(description="base64 PNG of the arithmetic result")
    neighbours: list[str]
    terms: list[TermOut]


class LatentOut(BaseModel):
    seed: int
    latent: list[float]


class LatentsOut(BaseModel):
    model_id: str
    nz: int
    truncation: float | None
    latents: list[LatentOut]


class ModelOut(BaseModel):
    model_id: str
    sha256: str
    file: str  # the export's file name; the server's directories are not disclosed
    config: dict[str, int]
    provenance: dict[str, object]
    device: str
    dtype: str
    precision: str  # fp32 | bf16 (DCGAN_PRECISION); bf16's model_id ends in -bf16
    runtime: str  # torch | onnxruntime (DCGAN_RUNTIME); onnxruntime's model_id ends in -ort
    max_images_per_request: int
    max_batch_images: int
    max_interpolation_steps: int


class ErrorOut(BaseModel):
    detail: str | list[dict[str, object]]


InvertMode = Literal["fast", "faithful"]


class InvertFormOptions(_Body):
    """/invert's options when sent as form fields beside the photo (text, parsed as the query's would be)."""

    mode: InvertMode | None = None
    steps: int | None = Field(default=None, ge=0, le=5000)
    align: bool | None = None


class FaceOut(BaseModel):
    box: list[int] | None = Field(description="[x, y, w, h] of the face in the photo (EXIF-rotated); null: none")
    eyes: list[list[float]] | None = Field(description="[[x, y], [x, y]] eye centres in the photo; null: not found")
    faces_found: int = Field(description="faces detected; with several, the largest was used (see note)")
    note: str = Field(description="what alignment did, in words (e.g. 'largest of 3 faces')")


class InvertOut(BaseModel):
    model_id: str
    mode: InvertMode
    steps: int = Field(description="optimiser steps run (0 for mode=fast: the encoder alone)")
    seconds: float = Field(description="wall time of the inversion (decode, align, invert, encode)")
    latent: list[float] = Field(description="nz floats; post them as `latents`/`latent` to the other routes")
    psnr: float = Field(description="dB, reconstruction vs the aligned crop")
    ssim: float = Field(description="single-scale SSIM, reconstruction vs the aligned crop")
    aligned: str = Field(description="base64 PNG: the aligned crop the latent was fitted to (model size)")
    reconstruction: str = Field(description="base64 PNG: the generator's face for `latent` (as /generate draws it)")
    align: bool = Field(description="whether the photo was aligned (false: taken as an aligned crop)")
    face: FaceOut
