"""InterFaceGAN directions for a generator: score generated faces with the attribute classifier, fit a
linear boundary per attribute in z-space, and write its unit normal into a new generator export.

    python -m training.directions --checkpoint G.safetensors --classifier C.safetensors --out G+dirs.safetensors
    python -m training.directions --checkpoint G.safetensors --celeba ROOT --out ...   # trains C first

Per attribute (Shen et al., CVPR 2020, §3): of ``--samples`` latents from fixed seeds, the ``EXTREMES``
fraction with the highest classifier score and the same fraction with the lowest are the positive
and negative examples; a logistic regression on 70 % of them gives the boundary, and its accuracy
on the other 30 % is the direction's separation. Then the edit test: on ``--test-seeds`` latents
never used for fitting, +2σ along the direction must raise the classifier's probability and −2σ
lower it; the success rates are reported and written beside the export.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from models.checkpoint import Provenance, load_export, save_generator
from models.dcgan import Generator
from models.directions import Direction, edit
from models.latent import latents_for_seeds
from models.sampling import render
from training.attributes import Classifier, build, load_classifier

FIT_SEED_BASE = 3_000_000  # latents for fitting come from seeds 3,000,000.. (models.latent contract)
TEST_SEED_BASE = 4_000_000  # the edit test's, disjoint from them
EXTREMES = 0.2  # the top and bottom 20 % of scores are the examples (InterFaceGAN takes the extremes)
TRAIN_FRACTION = 0.7
TEST_STRENGTH = 2.0  # sigma
L2 = 1e-3  # ridge on the boundary's weights


def scores(
    generator: Generator, classifier: Classifier, seeds: range, batch: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents (M, nz) of ``seeds`` and the classifier's P(attribute) for their faces (M, A)."""
    z = latents_for_seeds(seeds, generator.config.nz)
    probs = torch.cat([classifier.probabilities(render(generator, part)) for part in z.split(batch)])
    return z, probs


def fit_boundary(z: torch.Tensor, positive: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, float]:
    """Logistic regression z -> positive on a 70 % split: (unit normal (nz,), accuracy on the other 30 %)."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(z), generator=g)
    cut = int(TRAIN_FRACTION * len(z))
    train, test = order[:cut], order[cut:]
    x, y = z.double(), positive.double()
    w = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = torch.nn.functional.binary_cross_entropy_with_logits(x[train] @ w + b, y[train]) + L2 * (w @ w)
        value.backward()
        return value

    optimizer.step(loss)
    with torch.no_grad():
        accuracy = float(((x[test] @ w + b > 0) == y[test].bool()).double().mean())
        normal = (w / w.norm()).float()
    return normal, accuracy


def fit_directions(generator: Generator, classifier: Classifier, samples: int) -> list[Direction]:
    """One attribute direction per attribute the classifier keeps."""
    z, probs = scores(generator, classifier, range(FIT_SEED_BASE, FIT_SEED_BASE + samples))
    k = int(EXTREMES * samples)
    out = []
    for name in classifier.kept:
        p = probs[:, classifier.attributes.index(name)]
        ranked = p.argsort()
        low, high = ranked[:k], ranked[-k:]
        normal, accuracy = fit_boundary(z[torch.cat([low, high])], torch.cat([torch.zeros(k), torch.ones(k)]))
        source = f"InterFaceGAN: logistic boundary on {2 * k} of {samples} faces scored by the attribute classifier"
        out.append(Direction(name, normal, "attribute", round(accuracy, 4), source))
    return out


def edit_success(
    generator: Generator, classifier: Classifier, directions: list[Direction], n: int
) -> dict[str, dict[str, Any]]:
    """Per direction: the fraction of ``n`` unseen seeds whose P(attribute) rises at +2σ and falls at −2σ."""
    z0 = latents_for_seeds(range(TEST_SEED_BASE, TEST_SEED_BASE + n), generator.config.nz)  # (n, nz)
    return edit_success_at(generator, classifier, directions, z0)


def edit_success_at(
    generator: Generator, classifier: Classifier, directions: list[Direction], z0: torch.Tensor
) -> dict[str, dict[str, Any]]:
    """``edit_success`` from given latents z0 (n, nz): seed latents, or inverted faces' (``training.invert_eval``)."""
    n = len(z0)
    table = {}
    for d in directions:
        column = classifier.attributes.index(d.name)
        moved = torch.cat([edit(z, d.vector, [-TEST_STRENGTH, 0.0, TEST_STRENGTH]) for z in z0])  # (3n, nz)
        p = classifier.probabilities(render(generator, moved))[:, column].reshape(n, 3)  # (-, 0, +)
        table[d.name] = {
            "raises_at_plus_2": round(float((p[:, 2] > p[:, 1]).double().mean()), 3),
            "lowers_at_minus_2": round(float((p[:, 0] < p[:, 1]).double().mean()), 3),
            "mean_p": [round(float(v), 3) for v in p.mean(dim=0)],
            "separation": d.separation,
        }
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.directions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="generator export to add directions to")
    parser.add_argument("--out", type=Path, required=True, help="the new export (may be --checkpoint itself)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--classifier", type=Path, help="a trained attribute classifier (training.attributes)")
    source.add_argument("--celeba", type=Path, help="CelebA root: train the classifier first (images 1-9000)")
    parser.add_argument("--classifier-out", type=Path, default=Path("runs/attributes/classifier.safetensors"))
    parser.add_argument("--samples", type=int, default=20000, help="latents scored for fitting")
    parser.add_argument("--test-seeds", type=int, default=200, help="unseen latents for the edit test")
    parser.add_argument("--report", type=Path, help="edit-success table as JSON (default: beside --out)")
    args = parser.parse_args(argv)
    try:
        if args.classifier:
            classifier = load_classifier(args.classifier)
        else:
            classifier = build(args.celeba, args.classifier_out, max_images=10000, holdout=1000, epochs=10)
        export = load_export(args.checkpoint)
        directions = fit_directions(export.generator, classifier, args.samples)
        table = edit_success(export.generator, classifier, directions, args.test_seeds)
        save_generator(export.generator, args.out, _provenance(export.info.provenance, table), directions)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = args.report or args.out.with_suffix(".directions.json")
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({"classifier": classifier.report, "edits": table}, indent=2) + "\n")
    print(f"{'direction':22} {'separation':>10} {'+2σ raises':>10} {'−2σ lowers':>10}")
    for name, row in table.items():
        print(f"{name:22} {row['separation']:10.3f} {row['raises_at_plus_2']:10.3f} {row['lowers_at_minus_2']:10.3f}")
    print(f"wrote {args.out} with {len(directions)} directions; the table: {report}")
    return 0


def _provenance(base: dict[str, Any], table: dict[str, Any]) -> Provenance:
    """The generator's provenance as loaded, plus the edit-success rates (+2σ raises, −2σ lowers)."""
    kept = {k: v for k, v in base.items() if k in {f.name for f in fields(Provenance)}}
    rates = {name: [row["raises_at_plus_2"], row["lowers_at_minus_2"]] for name, row in table.items()}
    return Provenance(**{**kept, "quality": {**kept.get("quality", {}), "edit_success_at_2_sigma": rates}})


if __name__ == "__main__":
    raise SystemExit(main())
