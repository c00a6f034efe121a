"""Validated request bodies -> latent rows (N, nz), one row per image the request renders.

Checks the limits that depend on the settings or on the model (n, steps, latent length) with 422s
that name the field. Seeds go through ``models.latent`` only, so an image is a pure function of
(model, seed, truncation).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

from app.errors import invalid
from app.schemas import ArithmeticBody, EditBody, GenerateBody, InterpolateBody
from models import Direction
from models.directions import combine, edit
from models.latent import SEED_MAX, SeedLatents, arithmetic, interpolation_weights, latents_for_seeds, lerp, slerp

DEFAULT_N = 16
T = TypeVar("T")


def latent_rows(latents: list[list[float]], nz: int, loc: tuple[str | int, ...]) -> torch.Tensor:
    """Client latents -> (N, nz) float32; each must have exactly nz values (bounds were checked by the schema)."""
    for i, latent in enumerate(latents):
        if len(latent) != nz:
            raise invalid((*loc, i), f"a latent must have exactly nz={nz} values, got {len(latent)}")
    return torch.tensor(latents, dtype=torch.float32).reshape(len(latents), nz)


def generate_rows(
    n: int | None, seed: int | None, truncation: float | None, body: GenerateBody | None, max_n: int, nz: int
) -> tuple[list[int] | None, torch.Tensor | SeedLatents]:
    """The seeds (None for client latents) and latent rows of a /generate request. Seeds' latents are left
    to draw in the forward's worker (``SeedLatents``): on the event loop they cost more than the route."""
    if n is not None and not 1 <= n <= max_n:
        raise invalid(("query", "n"), f"n must be in 1..{max_n}, got {n}")
    if body is None:
        n = DEFAULT_N if n is None else n
        n = min(n, max_n)
        if seed is None:
            seeds = [secrets.randbelow(SEED_MAX + 1) for _ in range(n)]
        elif seed + n - 1 > SEED_MAX:
            raise invalid(("query", "seed"), f"seed + n - 1 must be <= {SEED_MAX}, got {seed} + {n} - 1")
        else:
            seeds = list(range(seed, seed + n))
        return seeds, SeedLatents(tuple(seeds), nz, truncation)
    if seed is not None:
        raise invalid(("query", "seed"), "give seeds either as ?seed= or in the body, not both")
    count = len(body.seeds or body.latents or [])
    field = "seeds" if body.seeds is not None else "latents"
    if count > max_n:
        raise invalid(("body", field), f"at most {max_n} images per request, got {count}")
    if n is not None and n != count:
        raise invalid(("query", "n"), f"n={n} disagrees with the {count} {field} in the body (leave n out)")
    if body.seeds is not None:
        return body.seeds, SeedLatents(tuple(body.seeds), nz, truncation)
    if truncation is not None:
        raise invalid(("query", "truncation"), "truncation applies to seeds, not to client latents")
    assert body.latents is not None
    return None, latent_rows(body.latents, nz, ("body", "latents"))


def _end(seed: int | None, latent: list[float] | None, truncation: float | None, nz: int, name: str) -> torch.Tensor:
    if seed is not None:
        return latents_for_seeds([seed], nz, truncation)[0]
    assert latent is not None
    return latent_rows([latent], nz, ("body", name))[0]


def interpolation_rows(body: InterpolateBody, nz: int, max_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights t (T,) and latents (T, nz) along the lerp/slerp path from a to b."""
    if body.steps > max_steps:
        raise invalid(("body", "steps"), f"steps must be in 2..{max_steps}, got {body.steps}")
    a = _end(body.seed_a, body.latent_a, body.truncation, nz, "latent_a")  # (nz,)
    b = _end(body.seed_b, body.latent_b, body.truncation, nz, "latent_b")
    t = interpolation_weights(body.steps)  # (T,)
    path = slerp if body.method == "slerp" else lerp
    return t, path(a, b, t)  # (T, nz)


def direction_vector(directions: Mapping[str, Direction], name: str, loc: tuple[str | int, ...]) -> torch.Tensor:
    """A named direction's unit vector (nz,); 422 at ``loc`` naming it and listing the known ones."""
    if name not in directions:
        raise invalid(loc, f"unknown direction {name!r}; known: {', '.join(directions) or 'none'}")
    return directions[name].vector


def edit_rows(body: EditBody, directions: Mapping[str, Direction], nz: int, max_images: int) -> torch.Tensor:
    """Latents (S, nz) of an /edit: the face moved by each strength along the (combined) direction."""
    if len(body.strengths) > max_images:
        raise invalid(("body", "strengths"), f"at most {max_images} strengths (images) per request")
    if isinstance(body.direction, str):
        weighted = [(1.0, direction_vector(directions, body.direction, ("body", "direction")))]
    else:
        weighted = [
            (d.weight, direction_vector(directions, d.name, ("body", "direction", i, "name")))
            for i, d in enumerate(body.direction)
        ]
    keep = [direction_vector(directions, name, ("body", "keep", i)) for i, name in enumerate(body.keep)]
    try:
        direction = combine(weighted, keep)  # (nz,)
    except ValueError as e:
        raise invalid(("body", "direction"), str(e)) from None
    z = _end(body.seed, body.latent, body.truncation, nz, "latent")  # (nz,)
    return edit(z, direction, body.strengths)  # (S, nz); strength 0 is z itself


@dataclass(frozen=True)
class ArithmeticParts(Generic[T]):
    """Per-row items (images, PNGs) of an /arithmetic render, by role (per term: None for a direction term)."""

    exemplars: list[Sequence[T]]  # one sequence per term (empty for a direction term)
    means: list[T | None]  # one per term
    result: T
    neighbours: Sequence[T]


@dataclass(frozen=True)
class ArithmeticPlan:
    """The rows of an /arithmetic render, and their roles: every exemplar term's exemplars, their means,
    the result, its jittered neighbours. The one place that knows this order builds it and splits it."""

    z: torch.Tensor  # (sum(k_i) + exemplar terms + 1 + neighbours, nz)
    exemplar_counts: tuple[int, ...]  # per term; 0 for a direction term
    neighbours: int

    def split(self, items: Sequence[T]) -> ArithmeticParts[T]:
        counts = self.exemplar_counts
        starts = [sum(counts[:i]) for i in range(len(counts) + 1)]
        exemplars = [items[a:b] for a, b in itertools.pairwise(starts)]
        k, with_mean = starts[-1], sum(1 for c in counts if c)
        mean_items = iter(items[k : k + with_mean])
        means = [next(mean_items) if c else None for c in counts]
        return ArithmeticParts(exemplars, means, items[k + with_mean], items[k + with_mean + 1 :])

    def layout(self) -> list[list[int | None]]:
        """Row indices laid out as the paper's figure: a row of exemplars per exemplar term, a row of their
        means (blank under a direction term), then the result followed by its neighbours."""
        parts = self.split(range(self.z.shape[0]))
        rows: list[list[int | None]] = [list(e) for e in parts.exemplars if len(e)]
        return [*rows, list(parts.means), [parts.result, *parts.neighbours]]


def arithmetic_rows(
    body: ArithmeticBody, directions: Mapping[str, Direction], nz: int, max_images: int
) -> ArithmeticPlan:
    """sum(weight * mean(exemplars)) over exemplar terms, plus weight * n over direction terms."""
    exemplars, weighted = [], []
    for i, term in enumerate(body.terms):
        if term.direction is not None:
            n = direction_vector(directions, term.direction, ("body", "terms", i, "direction"))
            exemplars.append(torch.empty(0, nz))
            weighted.append(term.weight * n)
        elif term.seeds is not None:
            exemplars.append(latents_for_seeds(term.seeds, nz, body.truncation))  # (k_i, nz)
        else:
            assert term.latents is not None
            exemplars.append(latent_rows(term.latents, nz, ("body", "terms", i, "latents")))
    with_mean = [e for e in exemplars if e.shape[0]]
    total = sum(e.shape[0] for e in exemplars) + len(with_mean) + 1 + body.neighbours
    if total > max_images:
        raise invalid(("body", "terms"), f"this request renders {total} images, more than the {max_images} allowed")
    means = [e.mean(dim=0) for e in with_mean]  # (nz,) each
    concepts = [(term.weight, e) for term, e in zip(body.terms, exemplars, strict=True) if e.shape[0]]
    result = arithmetic(concepts) if concepts else torch.zeros(nz)  # (nz,)
    result = result + torch.stack(weighted).sum(dim=0) if weighted else result
    noise = torch.randn(body.neighbours, nz, generator=torch.Generator("cpu").manual_seed(body.seed))
    neighbours = result + body.jitter * noise  # (K, nz)
    z = torch.cat([*exemplars, *(m[None] for m in means), result[None], neighbours])
    return ArithmeticPlan(z, tuple(e.shape[0] for e in exemplars), body.neighbours)
