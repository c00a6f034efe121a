"""How well inversion works, on held-out CelebA faces: ``python -m training.invert_eval``.

    python -m training.invert_eval --checkpoint G.safetensors --celeba ROOT --out docs/inversion/

On CelebA images 9,001-10,000 (``--images`` of them, in file order), which neither the generator nor
the encoder trained on, through the project's resize and centre crop (the training pipeline's own
"alignment"), it measures and writes ``eval.json`` and ``figure.png`` to ``--out``:

- the round trip on generated faces G(z): latent and pixel error (near exact, or the optimiser is wrong);
- PSNR and SSIM (median, p10, p90) of: the mean training face, the best of ``--seeds`` random seeds,
  the encoder alone (fast), Adam from random starts (no encoder), and the hybrid (faithful);
- attribute agreement: the attribute classifier on the input vs on the reconstruction, beside the
  classifier's own accuracy on those inputs (CelebA's labels);
- edit success (+2σ raises, −2σ lowers) on inverted latents vs on seed latents, per kept direction;
- latency per face, fast and faithful, one face at a time on this machine;
- the figure: rows of held-out faces; input, aligned, fast, faithful, Smiling +2, Male +2.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw

from inversion.encoder import Encoder, EncoderInfo, default_path, load_encoder
from inversion.fidelity import from_uint8, psnr, ssim
from inversion.refine import DEFAULT_STARTS, DEFAULT_STEPS, InversionResult, Objective, invert, refine
from models.checkpoint import load_export
from models.dcgan import Generator
from models.directions import Direction, edit
from models.latent import latents_for_seeds
from models.sampling import to_uint8
from training.attributes import Classifier, load_classifier
from training.config import TrainConfig
from training.data import celeba_root, load_holdout, load_images
from training.directions import edit_success_at

ROUND_TRIP_SEED_BASE = 5_000_000  # generated faces for the round trip (disjoint from fitting and edit tests)
RANDOM_SEED_BASE = 6_000_000  # the best-of-N baseline's seeds
EDIT_SEED_BASE = 4_000_000  # the seed latents edit success on inverted ones is compared with
FIGURE_EDITS = (("Smiling", 2.0), ("Male", 2.0))
CELL = 128  # px per figure cell
HEADER = 28  # px of column titles


def _stats(values: torch.Tensor) -> dict[str, float]:
    v = values.double()
    q = torch.quantile(v, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64))
    return {"p10": round(float(q[0]), 3), "median": round(float(q[1]), 3), "p90": round(float(q[2]), 3)}


def _fidelity(images: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
    return {"psnr": _stats(psnr(images, target)), "ssim": _stats(ssim(images, target))}


@torch.inference_mode()
def best_of_seeds(G: Generator, target: torch.Tensor, n: int, batch: int = 250) -> torch.Tensor:
    """Per target, G's face (of ``n`` seeds) with the highest PSNR: (N, C, S, S)."""
    best = torch.full((len(target),), -1.0)
    out = torch.empty_like(target)
    for start in range(RANDOM_SEED_BASE, RANDOM_SEED_BASE + n, batch):
        faces = G(latents_for_seeds(range(start, min(start + batch, RANDOM_SEED_BASE + n)), G.config.nz))
        for i, x in enumerate(target):
            p = psnr(faces, x.expand_as(faces))  # (B,)
            j = int(p.argmax())
            if p[j] > best[i]:
                best[i], out[i] = p[j], faces[j]
    return out


def round_trip(G: Generator, E: Encoder, n: int, steps: int, starts: int) -> dict[str, Any]:
    """Invert generated faces G(z): how far the latent and the pixels land from the truth."""
    z = latents_for_seeds(range(ROUND_TRIP_SEED_BASE, ROUND_TRIP_SEED_BASE + n), G.config.nz)
    with torch.inference_mode():
        x = G(z)
    rows: dict[str, Any] = {}
    hybrid = invert(G, E, x, steps=steps, starts=starts)
    bare = refine(G, E, x, hybrid.z[:, None], steps, Objective(consistency=0.0, shell=0.0))  # pixels only
    with torch.inference_mode():
        for name, found in (("encoder", invert(G, E, x, mode="fast").z), ("hybrid", hybrid.z), ("pixels_only", bare)):
            rows[name] = {
                "latent_relative_error": _stats((found - z).norm(dim=1) / z.norm(dim=1)),
                "psnr": _stats(psnr(G(found), x)),
            }
    return rows


def attribute_agreement(
    classifier: Classifier, labels: torch.Tensor, inputs: torch.Tensor, recons: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """Per kept attribute: the classifier's accuracy on the inputs (against CelebA's labels), and how often
    its decision on each reconstruction agrees with its decision on the input."""
    columns = [classifier.attributes.index(a) for a in classifier.kept]
    on_input = classifier.probabilities(to_uint8(inputs))[:, columns] > 0.5  # (N, A)
    table: dict[str, Any] = {"accuracy_on_inputs": (on_input == labels[:, columns].bool()).double().mean(0)}
    for name, images in recons.items():
        decided = classifier.probabilities(to_uint8(images))[:, columns] > 0.5
        table[f"agreement_{name}"] = (decided == on_input).double().mean(0)
    rows = {a: {k: round(float(v[i]), 3) for k, v in table.items()} for i, a in enumerate(classifier.kept)}
    mean = {k: round(float(v.mean()), 3) for k, v in table.items()}
    return {"mean_over_kept": mean, "per_attribute": rows}


def latency(G: Generator, E: Encoder, target: torch.Tensor, steps: int, starts: int) -> dict[str, Any]:
    """Per face, one face at a time (as a request is served): wall seconds and this process's CPU seconds
    (medians over the faces given). On a machine other work shares, the CPU seconds are what an idle
    one would take with one thread; the wall time says how busy this one was."""
    out: dict[str, Any] = {"threads": torch.get_num_threads()}
    for mode in ("fast", "faithful"):
        wall, cpu = [], []
        for x in target:
            began = time.process_time()
            wall.append(invert(G, E, x[None], mode=mode, steps=steps, starts=starts).seconds)
            cpu.append(time.process_time() - began)
        out[mode] = {
            "wall_median_s": round(statistics.median(wall), 3),
            "cpu_median_s": round(statistics.median(cpu), 3),
        }
    return out


def figure(
    path: Path,
    photos: list[Path],
    inputs: torch.Tensor,
    fast: torch.Tensor,
    G: Generator,
    z: torch.Tensor,
    directions: dict[str, Direction],
) -> None:
    """Rows of faces: the photo as stored, the aligned crop, fast, faithful, then each figure edit at +2σ."""
    edits = [(name, s) for name, s in FIGURE_EDITS if name in directions]
    with torch.inference_mode():
        faithful = G(z)
        edited = [G(torch.stack([edit(zi, directions[n].vector, [s])[0] for zi in z])) for n, s in edits]
    columns = [inputs, fast, faithful, *edited]
    titles = ["input", "aligned", "fast", "faithful", *(f"{n} +{s:g}" for n, s in edits)]
    sheet = Image.new("RGB", (CELL * (len(columns) + 1), HEADER + CELL * len(photos)), "white")
    draw = ImageDraw.Draw(sheet)
    for col, title in enumerate(titles):
        draw.text((col * CELL + CELL // 2, HEADER // 2), title, fill="black", anchor="mm", font_size=16)
    for row, photo in enumerate(photos):
        with Image.open(photo) as img:
            original = img.convert("RGB")
        original.thumbnail((CELL, CELL), Image.Resampling.LANCZOS)
        sheet.paste(original, ((CELL - original.width) // 2, HEADER + row * CELL + (CELL - original.height) // 2))
        for col, images in enumerate(columns, start=1):
            cell = Image.fromarray(to_uint8(images[row : row + 1])[0].numpy()).resize(
                (CELL, CELL), Image.Resampling.NEAREST
            )
            sheet.paste(cell, (col * CELL, HEADER + row * CELL))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


TARGETS = {"psnr_db": 20.0, "faithful_s": 3.0, "edit_points": 10.0}
_FIGURE_SECTION = (
    "## The figure",
    "",
    "![held-out faces: input, aligned, fast, faithful, Smiling +2, Male +2](figure.png)",
)


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _q(stats: dict[str, float], digits: int) -> str:
    return f"{stats['median']:.{digits}f} ({stats['p10']:.{digits}f}–{stats['p90']:.{digits}f})"


def _edit_rate(table: dict[str, dict[str, Any]]) -> float:
    """Mean over directions of the two success rates (+2σ raises, −2σ lowers), in points."""
    rates = [(r["raises_at_plus_2"] + r["lowers_at_minus_2"]) / 2 for r in table.values()]
    return 100 * statistics.mean(rates) if rates else float("nan")


def markdown(report: dict[str, Any], command: str) -> str:
    """docs/inversion/README.md: the tables of ``report``, and the targets checked against them."""
    sections = (
        _intro(report, command),
        _round_trip_section(report),
        _fidelity_section(report),
        _attribute_section(report["attributes"]),
        _edit_section(report["edit_success"], report["images"]["count"]),
        _latency_section(report),
        _targets_section(report),
        _FIGURE_SECTION,
    )
    return "\n".join(line for section in sections for line in (*section, ""))  # a blank line after each


def _intro(report: dict[str, Any], command: str) -> list[str]:
    """The title, what was measured on which machine, and the encoder's provenance."""
    images, machine, settings = report["images"], report["machine"], report["settings"]
    return [
        "# Inversion of held-out faces: the tables",
        "",
        f"Made by `{command}` (raw numbers: [eval.json](eval.json)). {images['count']} held-out CelebA images "
        f"({images['files']}; neither G nor E trained on them), {images['aligned_by']} to "
        f"{report['size']}×{report['size']}. Faithful mode: {settings['steps']} Adam steps from "
        f"{settings['starts']} starts. CPU: {machine['cpu']}, {machine['threads']} torch thread(s), "
        f"load average {machine['load_average']} at the start (the machine was shared).",
        "",
        _encoder_line(report["encoder"]["provenance"]),
        "",
        "How it works and what limits fidelity: [design.md](design.md).",
    ]


def _encoder_line(enc: dict[str, Any]) -> str:
    return (
        f"Encoder: {enc.get('recipe', {}).get('steps')} steps, {enc.get('seconds')} s wall"
        + (f" ({enc['cpu_seconds']} s CPU)" if "cpu_seconds" in enc else "")
        + f" on {enc.get('device')}, trained on {enc.get('data', {}).get('files')}."
    )


def _round_trip_section(report: dict[str, Any]) -> list[str]:
    return [
        "## Round trip on generated faces G(z)",
        "",
        f"{report['round_trip_count']} latents from seeds {ROUND_TRIP_SEED_BASE:,}..; median (p10–p90).",
        "",
        _row(["method", "|ẑ − z| / |z|", "PSNR of G(ẑ) vs G(z), dB"]),
        _row(["---", "---:", "---:"]),
        *(
            _row([name.replace("_", " "), _q(r["latent_relative_error"], 3), _q(r["psnr"], 1)])
            for name, r in report["round_trip"].items()
        ),
    ]


def _fidelity_section(report: dict[str, Any]) -> list[str]:
    norms = report["latent_norm_over_sqrt_nz"]
    baseline_images = min(report["settings"]["baseline_images"], report["images"]["count"])
    lines = [
        "## Fidelity on held-out faces",
        "",
        "Median (p10–p90). |z|/√nz: where the latent sits (N(0, I) latents sit at 1.0).",
        "",
        _row(["method", "PSNR, dB", "SSIM", "|z|/√nz"]),
        _row(["---", "---:", "---:", "---:"]),
    ]
    for name, r in report["fidelity"].items():
        norm = _q(norms[name], 2) if name in norms else ""
        label = name.replace("_", " ")
        if name == "random_start_optimisation":
            label += f" (first {baseline_images} images)"
        lines.append(_row([label, _q(r["psnr"], 2), _q(r["ssim"], 3), norm]))
    return lines


def _attribute_section(attrs: dict[str, Any]) -> list[str]:
    columns = ("accuracy_on_inputs", "agreement_encoder_alone", "agreement_hybrid")
    return [
        "## Attribute agreement",
        "",
        "The attribute classifier's decision (p > 0.5) on the reconstruction vs on the input, per kept",
        "attribute; beside it, the classifier's own accuracy on the inputs against CelebA's labels.",
        "",
        _row(["attribute", "classifier accuracy on inputs", "agreement: encoder alone", "agreement: hybrid"]),
        _row(["---", "---:", "---:", "---:"]),
        _row(["**mean**", *(attrs["mean_over_kept"][c] for c in columns)]),
        *(_row([name, *(r[c] for c in columns)]) for name, r in attrs["per_attribute"].items()),
    ]


def _edit_section(edits: dict[str, Any], count: int) -> list[str]:
    inv, seeds = edits["inverted"], edits["seeds"]
    rates = ("raises_at_plus_2", "lowers_at_minus_2")
    return [
        "## Edit success: inverted latents vs seed latents",
        "",
        "As [docs/edits](../edits/README.md) measures it: the share of latents whose P(attribute) rises at +2σ",
        f"and falls at −2σ; {count} hybrid latents of held-out faces vs as many seed latents (4,000,000..).",
        "",
        _row(["direction", "inverted: +2σ raises", "−2σ lowers", "seeds: +2σ raises", "−2σ lowers"]),
        _row(["---", "---:", "---:", "---:", "---:"]),
        *(_row([name, *(inv[name][k] for k in rates), *(seeds[name][k] for k in rates)]) for name in inv),
        _row(["**mean, points**", f"{_edit_rate(inv):.1f}", "", f"{_edit_rate(seeds):.1f}", ""]),
    ]


def _latency_section(report: dict[str, Any]) -> list[str]:
    lat = report["latency"]
    return [
        "## Latency per face",
        "",
        f"One face at a time, {lat['threads']} thread(s), median over {report['latency_faces']} faces. CPU seconds "
        "are this process's: what an idle core would take; wall seconds show the shared machine's load.",
        "",
        _row(["mode", "wall, s", "CPU, s"]),
        _row(["---", "---:", "---:"]),
        _row(["fast", lat["fast"]["wall_median_s"], lat["fast"]["cpu_median_s"]]),
        _row(["faithful", lat["faithful"]["wall_median_s"], lat["faithful"]["cpu_median_s"]]),
        "",
        f"Batched ({report['batch']} faces a batch) faithful inversion took {lat['faithful_batched_per_face_s']} s "
        "wall per face.",
    ]


def _targets_section(report: dict[str, Any]) -> list[str]:
    return [
        "## Targets",
        "",
        _row(["target", "measured", "goal", "met"]),
        _row(["---", "---:", "---:", ":---:"]),
        *(_row([name, value, goal, "yes" if ok else "**no**"]) for name, value, ok, goal in _target_checks(report)),
    ]


def _target_checks(report: dict[str, Any]) -> list[tuple[str, str, bool, str]]:
    """Each target: (what, the measured value, whether it is met, the goal)."""
    hybrid_psnr = report["fidelity"]["hybrid"]["psnr"]["median"]
    faithful_cpu_s = report["latency"]["faithful"]["cpu_median_s"]
    edits = report["edit_success"]
    gap = _edit_rate(edits["seeds"]) - _edit_rate(edits["inverted"])
    return [
        ("held-out median PSNR, faithful", f"{hybrid_psnr:.2f} dB", hybrid_psnr >= TARGETS["psnr_db"], "≥ 20 dB"),
        (
            "faithful, per face (CPU s, one thread)",
            f"{faithful_cpu_s} s",
            faithful_cpu_s <= TARGETS["faithful_s"],
            "≤ 3 s",
        ),
        ("edit success, seeds − inverted", f"{gap:+.1f} points", gap <= TARGETS["edit_points"], "≤ 10 points"),
    ]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _batched_invert(
    G: Generator, E: Encoder, x: torch.Tensor, steps: int, starts: int, batch: int
) -> tuple[torch.Tensor, float]:
    """Faithful latents (N, nz) for ``x`` in batches of ``batch`` images, and the seconds per face."""
    began = time.perf_counter()
    z = torch.cat([invert(G, E, part, steps=steps, starts=starts).z for part in x.split(batch)])
    return z, (time.perf_counter() - began) / len(x)


class _Stopwatch:
    """Runs the measured stages one by one, printing each one's wall seconds and keeping them (``timings_s``)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, fn: Any) -> Any:
        began = time.perf_counter()
        out = fn()
        self.seconds[name] = round(time.perf_counter() - began, 1)
        print(f"{name}: {self.seconds[name]} s", file=sys.stderr)
        return out


@dataclass
class _Inversions:
    """Each method's answer for the held-out faces x (N, C, S, S)."""

    fast: InversionResult  # the encoder alone
    best_seeds: torch.Tensor  # (N, C, S, S) the best of the random seeds' faces
    random_z: torch.Tensor  # (n, nz) Adam from random starts, on the first n = baseline_images faces only
    hybrid_z: torch.Tensor  # (N, nz) encoder then Adam (faithful)
    per_face_s: float  # the hybrid's wall seconds per face, batched


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Everything the module docstring lists: writes figure.png to ``args.out``, returns eval.json's report."""
    export = load_export(args.checkpoint)
    G = export.generator
    E, encoder_info = load_encoder(args.encoder or default_path(args.checkpoint), expect_generator=export.info)
    classifier = load_classifier(args.classifier)
    names, x, mean_face = _held_out(args, G.config.image_size)  # x, mean_face: (N, C, S, S)
    report = _setup(args, names, encoder_info)
    timed = _Stopwatch()
    report["round_trip"] = timed("round trip", lambda: round_trip(G, E, args.round_trip, args.steps, args.starts))
    found = _invert_all(G, E, x, args, timed)
    with torch.inference_mode():
        random_recon, hybrid_recon = G(found.random_z), G(found.hybrid_z)  # (n, C, S, S), (N, C, S, S)
    report["fidelity"] = _fidelity_table(x, mean_face, found, random_recon, hybrid_recon, args)
    report["latent_norm_over_sqrt_nz"] = _latent_norms(found, G.config.nz)
    labels = _labels(Path(args.celeba), names)
    report["attributes"] = attribute_agreement(
        classifier, labels, x, {"encoder_alone": found.fast.reconstruction, "hybrid": hybrid_recon}
    )
    directions = {d.name: d for d in export.directions if d.kind == "attribute" and d.name in classifier.attributes}
    kept = list(directions.values())
    report["edit_success"] = timed("edits", lambda: _edit_success(G, classifier, kept, found.hybrid_z))
    report["latency"] = timed("latency", lambda: latency(G, E, x[: args.latency_faces], args.steps, args.starts))
    report["latency"]["faithful_batched_per_face_s"] = round(found.per_face_s, 3)
    report["timings_s"] = timed.seconds
    report |= {"size": G.config.image_size, "round_trip_count": args.round_trip, "batch": args.batch}
    report["latency_faces"] = min(args.latency_faces, len(x))
    _write_figure(args, names, x, found, G, directions)
    return report


def _held_out(args: argparse.Namespace, image_size: int) -> tuple[tuple[str, ...], torch.Tensor, torch.Tensor]:
    """The first ``args.images`` held-out faces: their names, the faces x (N, C, S, S) in [-1, 1], and the mean
    training face expanded to x's shape."""
    data = TrainConfig(
        dataset="celeba",
        data=str(args.celeba),
        max_images=args.max_images,
        holdout=args.holdout,
        image_size=image_size,
        cache_dir=args.cache_dir,
    )
    held = load_holdout(data)
    names, x = held.names[: args.images], from_uint8(held.images[: args.images])  # (N, C, S, S)
    mean_face = from_uint8(load_images(data).images).mean(0, keepdim=True).expand_as(x)
    return names, x, mean_face


def _setup(args: argparse.Namespace, names: tuple[str, ...], encoder_info: EncoderInfo) -> dict[str, Any]:
    """The report's first keys: which images, the settings, the encoder and the machine."""
    return {
        "images": {"files": f"{names[0]}..{names[-1]}", "count": len(names), "aligned_by": "resize + centre crop"},
        "settings": {
            "steps": args.steps,
            "starts": args.starts,
            "seeds": args.seeds,
            "baseline_images": args.baseline_images,
            **asdict(Objective()),
        },
        "encoder": {"path": str(encoder_info.path), "provenance": encoder_info.provenance},
        "machine": {"cpu": cpu_name(), "threads": torch.get_num_threads(), "load_average": list(_loadavg())},
    }


def _invert_all(G: Generator, E: Encoder, x: torch.Tensor, args: argparse.Namespace, timed: _Stopwatch) -> _Inversions:
    """Every method on the faces x (N, C, S, S), each timed as its own stage."""
    fast = timed("encoder", lambda: invert(G, E, x, mode="fast"))
    best_seeds = timed("best of seeds", lambda: best_of_seeds(G, x, args.seeds))
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(len(x), args.starts, G.config.nz, generator=g)  # (N, starts, nz)
    few = slice(0, args.baseline_images)  # the random-start baseline costs as much as the hybrid: fewer images
    random_z = timed("random starts", lambda: _refine_in_batches(G, x[few], z0[few], args.steps, args.batch))
    hybrid_z, per_face = timed("hybrid", lambda: _batched_invert(G, E, x, args.steps, args.starts, args.batch))
    return _Inversions(fast, best_seeds, random_z, hybrid_z, per_face)


def _refine_in_batches(G: Generator, x: torch.Tensor, z0: torch.Tensor, steps: int, batch: int) -> torch.Tensor:
    """Adam without the encoder from the starts z0 (n, starts, nz) for the faces x (n, C, S, S): (n, nz)."""
    return torch.cat(
        [refine(G, None, part, z0_part, steps) for part, z0_part in zip(x.split(batch), z0.split(batch), strict=True)]
    )


def _fidelity_table(
    x: torch.Tensor,
    mean_face: torch.Tensor,
    found: _Inversions,
    random_recon: torch.Tensor,
    hybrid_recon: torch.Tensor,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """PSNR and SSIM against x (N, C, S, S) per method; the random-start baseline's on its first n faces only."""
    return {
        "mean_face": _fidelity(mean_face, x),
        f"best_of_{args.seeds}_seeds": _fidelity(found.best_seeds, x),
        "encoder_alone": _fidelity(found.fast.reconstruction, x),
        "random_start_optimisation": _fidelity(random_recon, x[: args.baseline_images]),
        "hybrid": _fidelity(hybrid_recon, x),
    }


def _latent_norms(found: _Inversions, nz: int) -> dict[str, Any]:
    """Where each method's latents sit: |z| / √nz (N(0, I) latents sit at 1.0)."""
    return {
        "encoder_alone": _stats(found.fast.z.norm(dim=1) / nz**0.5),
        "random_start_optimisation": _stats(found.random_z.norm(dim=1) / nz**0.5),
        "hybrid": _stats(found.hybrid_z.norm(dim=1) / nz**0.5),
    }


def _edit_success(
    G: Generator, classifier: Classifier, kept: list[Direction], hybrid_z: torch.Tensor
) -> dict[str, Any]:
    """Edit success on the inverted latents (N, nz) and on as many seed latents (the edit test's seeds)."""
    return {
        "inverted": edit_success_at(G, classifier, kept, hybrid_z),
        "seeds": edit_success_at(
            G, classifier, kept, latents_for_seeds(range(EDIT_SEED_BASE, EDIT_SEED_BASE + len(hybrid_z)), G.config.nz)
        ),
    }


def _write_figure(
    args: argparse.Namespace,
    names: tuple[str, ...],
    x: torch.Tensor,
    found: _Inversions,
    G: Generator,
    directions: dict[str, Direction],
) -> None:
    """figure.png in ``args.out``: the first (up to) 8 held-out faces."""
    root = celeba_root(Path(args.celeba))
    rows = list(range(min(8, len(x))))
    figure(
        args.out / "figure.png",
        [root / names[i] for i in rows],
        x[rows],
        found.fast.reconstruction[rows],
        G,
        found.hybrid_z[rows],
        directions,
    )


def _labels(celeba: Path, names: tuple[str, ...]) -> torch.Tensor:
    from training.attributes import ATTRIBUTE_FILE, read_attributes

    _, rows = read_attributes(celeba / ATTRIBUTE_FILE)
    return torch.stack([rows[Path(n).name] for n in names]).float()


def _loadavg() -> tuple[float, ...]:
    try:
        import os

        return tuple(round(v, 2) for v in os.getloadavg())
    except OSError:
        return ()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.invert_eval",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="generator export")
    parser.add_argument("--encoder", type=Path, help="its encoder (default: <export stem>.encoder.safetensors)")
    parser.add_argument("--classifier", type=Path, default=Path("checkpoints/attributes-64.safetensors"), help=" ")
    parser.add_argument("--celeba", type=Path, required=True, help="CelebA root (images 9,001-10,000 are measured)")
    parser.add_argument("--out", type=Path, default=Path("docs/inversion"), help="eval.json and figure.png go here")
    parser.add_argument("--max-images", type=int, default=10000, help="as dcgan-train: the selection")
    parser.add_argument("--holdout", type=int, default=1000, help="as dcgan-train: its last N are measured")
    parser.add_argument("--images", type=int, default=200, help="held-out images measured (the first N)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="faithful mode's Adam steps")
    parser.add_argument("--starts", type=int, default=DEFAULT_STARTS, help="faithful mode's starts")
    parser.add_argument(
        "--baseline-images", type=int, default=50, help="of those, how many the random-start baseline inverts"
    )
    parser.add_argument("--seeds", type=int, default=1000, help="random seeds for the best-of-N baseline")
    parser.add_argument("--round-trip", type=int, default=32, help="generated faces for the round trip")
    parser.add_argument("--latency-faces", type=int, default=8, help="faces timed one at a time")
    parser.add_argument("--batch", type=int, default=50, help="images per refinement batch")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--cache-dir", help="decoded-image cache, as dcgan-train")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        report = evaluate(args)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    command = "python -m training.invert_eval " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.out / "README.md").write_text(markdown(report, command))
    print(json.dumps(report["fidelity"], indent=2))
    print(f"wrote {args.out / 'eval.json'} and {args.out / 'figure.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
