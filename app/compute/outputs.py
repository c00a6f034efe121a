"""What the forward's worker makes of one request's images: explicit values, not closures over a route.

The service builds one ``Output`` per request; the batcher carries it beside the request's latent
rows; the forward pool calls ``output.encode(images)`` in its thread right after the forward, so
encoding never runs on the event loop and a batch costs one thread hop in all.

Every PNG carries its provenance as text chunks (``dcgan:model_id``, ``dcgan:sha256``, the endpoint
and its parameters). A single image's chunks hold only what determines its pixels, so the same seed
gives the same bytes whatever else the request asked for.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from app.compute import encoding
from models import ExportInfo

Text = Mapping[str, str]  # PNG text chunks


class Output(Protocol):
    def encode(self, images: torch.Tensor) -> Any:
        """A request's images (n, H, W, C) uint8 -> what its response carries."""
        ...


def png_text(info: ExportInfo, endpoint: str, **params: Any) -> dict[str, str]:
    """PNG text chunks: the model, the endpoint and its parameters (strings as they are, the rest as JSON)."""
    text = {"dcgan:model_id": info.model_id, "dcgan:sha256": info.sha256, "dcgan:endpoint": endpoint}
    for key, value in params.items():
        kind = type(value)  # str and int (not bool) spelled out: json.dumps would give the same text, slower
        text["dcgan:" + key] = value if kind is str else str(value) if kind is int else json.dumps(value)
    return text


@dataclass(frozen=True)
class Grid:
    """One PNG: the images row-major, ``cols`` wide (None: near-square)."""

    text: Text
    cols: int | None = None

    def encode(self, images: torch.Tensor) -> bytes:
        return encoding.png(encoding.grid(images, self.cols), self.text)


@dataclass(frozen=True)
class Pngs:
    """One base64 PNG per image, each with its own text (the JSON formats)."""

    texts: Sequence[Text]

    def encode(self, images: torch.Tensor) -> list[str]:
        pngs = (encoding.png(image, text) for image, text in zip(images, self.texts, strict=True))
        return [base64.b64encode(data).decode("ascii") for data in pngs]


@dataclass(frozen=True)
class Animation:
    """An animated GIF or lossless WebP that plays forward and back, forever."""

    fmt: str  # gif | webp
    frame_ms: int
    comment: str

    def encode(self, images: torch.Tensor) -> bytes:
        return encoding.animation(images, self.fmt, self.frame_ms, self.comment)


@dataclass(frozen=True)
class Figure:
    """One PNG of tiled rows; ``layout`` holds image indices (None leaves a cell blank)."""

    layout: Sequence[Sequence[int | None]]
    text: Text

    def encode(self, images: torch.Tensor) -> bytes:
        rows = [[None if i is None else images[i] for i in row] for row in self.layout]
        return encoding.png(encoding.tile(rows), self.text)


@dataclass(frozen=True)
class Images:
    """The images themselves, (n, H, W, C) uint8 (in-process callers and tests)."""

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images
