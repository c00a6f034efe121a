"""The README's figures, made through the public API exactly as the curl examples make them.

    .venv/bin/python scripts/docs_figures.py                 # the bundled demo; writes docs/
    .venv/bin/python scripts/docs_figures.py --checkpoint runs/x/generator.safetensors --out /tmp/figs

Starts ``python -m app`` on 127.0.0.1 (CPU: bit-exact, the same bytes on every machine) and writes:
demo-grid.png (seeds 0-63), api/generate.png, api/interpolate.png + .gif, api/arithmetic.png (the
exemplar seeds in ARITHMETIC, picked by looking at demo-grid.png), edits/edit-grid.png (EDIT_FACES x 5
strengths for each of EDIT_ATTRIBUTES) and edits/sefa.png. Each figure is one or a few API calls.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import httpx
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent))
from playground_screenshot import ROOT, start_server  # the same server start

# The paper's "smiling woman - neutral woman + neutral man", exemplars picked by eye from a grid of seeds 0-95
ARITHMETIC = {
    "terms": [
        {"name": "smiling woman", "weight": 1, "seeds": [3, 5, 22]},
        {"name": "neutral woman", "weight": -1, "seeds": [14, 16, 44]},
        {"name": "neutral man", "weight": 1, "seeds": [13, 92, 95]},
    ],
    "neighbours": 8,
    "jitter": 0.25,
    "seed": 0,
}
EDIT_FACES = [14, 44, 13, 74]  # two neutral women, a neutral man, a man (seeds of the same grid)
EDIT_ATTRIBUTES = ["Smiling", "Male", "Blond_Hair"]
STRENGTHS = [-2.0, -1.0, 0.0, 1.0, 2.0]
SCALE = 2  # figures are drawn at twice the model's resolution (nearest neighbour: no invented detail)


def post(http: httpx.Client, path: str, **kwargs: object) -> bytes:
    r = http.post(path, timeout=120, **kwargs)  # type: ignore[arg-type]
    r.raise_for_status()
    return r.content


def labelled_rows(rows: list[tuple[str, Image.Image]], columns: list[str]) -> Image.Image:
    """Stack image strips with a label left of each, and a label over each of their ``columns`` frames."""
    font = ImageFont.load_default()
    label_w, header_h = 120, 20
    width = label_w + max(img.width for _, img in rows)
    canvas = Image.new("RGB", (width, header_h + sum(img.height for _, img in rows)), "white")
    draw = ImageDraw.Draw(canvas)
    cell = rows[0][1].width / len(columns)  # a frame plus its share of the padding, in figure pixels
    for i, text in enumerate(columns):
        draw.text((label_w + (i + 0.5) * cell - 3 * len(text), 4), text, fill="black", font=font)
    y = header_h
    for title, img in rows:
        canvas.paste(img, (label_w, y))
        draw.text((4, y + img.height // 2 - 6), title, fill="black", font=font)
        y += img.height
    return canvas


def big(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    return img.resize((img.width * SCALE, img.height * SCALE), Image.Resampling.NEAREST)


def edit_figure(http: httpx.Client, directions: list[str]) -> Image.Image:
    """For each direction: EDIT_FACES rows, each one /edit strip at STRENGTHS."""
    rows: list[tuple[str, Image.Image]] = []
    for name in directions:
        for i, seed in enumerate(EDIT_FACES):
            strip = post(http, "/edit", json={"seed": seed, "direction": name, "strengths": STRENGTHS})
            rows.append((name.replace("_", " ") if i == 0 else "", big(strip)))
    return labelled_rows(rows, [f"{s:+g} sigma" if s else "0 (plain)" for s in STRENGTHS])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "demo-faces-64.safetensors")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args(argv)
    (args.out / "api").mkdir(parents=True, exist_ok=True)
    (args.out / "edits").mkdir(parents=True, exist_ok=True)
    proc, base = start_server(args.checkpoint)
    try:
        with httpx.Client(base_url=base) as http:
            (args.out / "demo-grid.png").write_bytes(post(http, "/generate", params={"n": 64, "seed": 0}))
            (args.out / "api" / "generate.png").write_bytes(post(http, "/generate", params={"n": 16, "seed": 42}))
            interp = {"seed_a": 1, "seed_b": 2, "steps": 8, "method": "slerp"}
            (args.out / "api" / "interpolate.png").write_bytes(post(http, "/interpolate", json=interp))
            gif = interp | {"steps": 16, "format": "gif", "frame_ms": 80}
            (args.out / "api" / "interpolate.gif").write_bytes(post(http, "/interpolate", json=gif))
            (args.out / "api" / "arithmetic.png").write_bytes(post(http, "/arithmetic", json=ARITHMETIC))
            known = [d["name"] for d in http.get("/v1/directions").json()["directions"]]
            attributes = [a for a in EDIT_ATTRIBUTES if a in known]
            if attributes:
                edit_figure(http, attributes).save(args.out / "edits" / "edit-grid.png")
            edit_figure(http, [f"sefa-{i}" for i in range(3)]).save(args.out / "edits" / "sefa.png")
    finally:
        proc.terminate()
        proc.wait(30)
    print(f"wrote figures under {args.out} (attribute edits: {attributes or 'none: the export has no directions'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
