"""PNG encoders on real demo faces: CPU time and bytes per face, for one 64x64 face and a 16-face grid.

Every candidate writes the same provenance text chunks as the service (libraries that cannot write
them get ours spliced in after IHDR, which is counted), and every output is checked: Pillow decodes
the pixels we encoded, the text reads back, and a second encode gives the same bytes.

    python -m bench.png                    # about 1 min; writes docs/benchmarks/png-<cpu>.json
    python -m bench.png --rounds 9 --faces 64

Candidates whose library is missing are skipped, saying so. Times are CPU time of this thread
(``time.thread_time``), the median of ``--rounds`` interleaved rounds: on a shared machine that is
steadier than wall time, and an encoder that stays on one core costs exactly that. See
docs/benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import re
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, PngImagePlugin

from app.compute import encoding
from app.compute.outputs import png_text
from app.runtime.settings import DEFAULT_CHECKPOINT
from bench.serve import REPO, machine
from models import latents_for_seeds, load_export
from models.sampling import render

Encoder = Callable[[np.ndarray, dict[str, str]], bytes]


def faces(checkpoint: Path, count: int) -> np.ndarray:
    """Demo faces for seeds 0..count-1: (count, H, W, C) uint8."""
    export = load_export(str(checkpoint), torch.device("cpu"))
    return np.ascontiguousarray(render(export.generator, latents_for_seeds(range(count), export.info.config.nz)))


# --- the pieces of a small PNG writer: filters (numpy) x deflate (one library each) ---


def _filtered(array: np.ndarray, kind: str) -> bytes:
    """(H, W, C) uint8 -> PNG scanlines with one filter type for every row."""
    h, w, c = array.shape
    rows = np.ascontiguousarray(array).reshape(h, w * c)
    out = np.empty((h, w * c + 1), dtype=np.uint8)
    if kind == "none":
        out[:, 0] = 0
        out[:, 1:] = rows
    elif kind == "sub":
        return encoding._sub_filtered(array)
    elif kind == "up":
        out[:, 0] = 2
        out[0, 1:] = rows[0]
        np.subtract(rows[1:], rows[:-1], out=out[1:, 1:])
    elif kind == "paeth":
        x = rows.astype(np.int16)
        a = np.zeros_like(x)
        a[:, c:] = x[:, :-c]  # left
        b = np.zeros_like(x)
        b[1:] = x[:-1]  # up
        cc = np.zeros_like(x)
        cc[1:, c:] = x[:-1, :-c]  # up-left
        p = a + b - cc
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - cc)
        pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, cc))
        out[:, 0] = 4
        out[:, 1:] = (x - pred).astype(np.uint8)
    else:
        raise ValueError(kind)
    return out.tobytes()


def _libdeflate(data: bytes, level: int) -> bytes:
    import deflate

    return bytes(deflate.zlib_compress(data, level))


def _deflaters() -> dict[str, Callable[[bytes], bytes]]:
    """Available zlib-stream compressors by name (a missing library is left out)."""
    out: dict[str, Callable[[bytes], bytes]] = {
        "zlib-1": lambda d: zlib.compress(d, 1),
        "zlib-6": lambda d: zlib.compress(d, 6),
    }
    try:
        from isal import isal_zlib

        for level in (0, 1, 2, 3):
            out[f"isal-{level}"] = functools.partial(isal_zlib.compress, level=level)
    except ImportError:
        print("isal: not installed, skipped", file=sys.stderr)
    try:
        from zlib_ng import zlib_ng

        out["zlib-ng-1"] = lambda d: zlib_ng.compress(d, 1)
        out["zlib-ng-6"] = lambda d: zlib_ng.compress(d, 6)
    except ImportError:
        print("zlib-ng: not installed, skipped", file=sys.stderr)
    try:
        import deflate  # noqa: F401  (only whether it is there)

        for level in (1, 6):
            out[f"libdeflate-{level}"] = functools.partial(_libdeflate, level=level)
    except ImportError:
        print("deflate (libdeflate): not installed, skipped", file=sys.stderr)
    return out


def _writer(filter_kind: str, deflater: Callable[[bytes], bytes]) -> Encoder:
    """The service's PNG layout (app.compute.encoding.png) with another filter and deflate."""

    def encode(array: np.ndarray, text: dict[str, str]) -> bytes:
        return _assemble(array, text, deflater(_filtered(array, filter_kind)))

    return encode


def _assemble(array: np.ndarray, text: dict[str, str], idat: bytes) -> bytes:
    h, w, c = array.shape
    header = encoding.struct.pack(">IIBBBBB", w, h, 8, encoding._PNG_COLOUR[c], 0, 0, 0)
    head = [encoding._PNG_SIGNATURE, encoding._chunk(b"IHDR", header), _texts(text)]
    return b"".join([*head, encoding._chunk(b"IDAT", idat), encoding._chunk(b"IEND", b"")])


def _texts(text: dict[str, str]) -> bytes:
    items = [("Software", encoding.SOFTWARE), *sorted(text.items())]
    return b"".join(encoding._text_chunk(k, v) for k, v in items)


def _spliced(encode: Callable[[np.ndarray], bytes]) -> Encoder:
    """A library that writes no text chunks: ours go in right after its IHDR (8 + 25 bytes in)."""

    def with_text(array: np.ndarray, text: dict[str, str]) -> bytes:
        data = encode(array)
        return data[:33] + _texts(text) + data[33:]

    return with_text


def _pillow(**options: Any) -> Encoder:
    def encode(array: np.ndarray, text: dict[str, str]) -> bytes:
        info = PngImagePlugin.PngInfo()
        for key, value in [("Software", encoding.SOFTWARE), *sorted(text.items())]:
            info.add_text(key, value)
        buf = io.BytesIO()
        Image.fromarray(array, mode="RGB").save(buf, format="PNG", pnginfo=info, **options)
        return buf.getvalue()

    return encode


def candidates() -> dict[str, Encoder]:
    """Name -> encoder. The service's own encoder comes first."""
    out: dict[str, Encoder] = {"service (app.compute.encoding.png: fpng + our text)": encoding.png}
    out["Pillow level 6 (default)"] = _pillow()
    out["Pillow level 1"] = _pillow(compress_level=1)
    out["Pillow level 9 optimize"] = _pillow(optimize=True)
    out["Pillow level 1, Z_RLE"] = _pillow(compress_level=1, compress_type=zlib.Z_RLE)
    out["Pillow level 6, Z_FILTERED"] = _pillow(compress_level=6, compress_type=zlib.Z_FILTERED)
    try:
        import imagecodecs

        out["imagecodecs libpng 1, sub, RLE"] = _spliced(
            lambda a: bytes(imagecodecs.png_encode(a, 1, strategy=3, filter=16))
        )
        out["imagecodecs libpng 1, all filters"] = _spliced(lambda a: bytes(imagecodecs.png_encode(a, 1)))
        out["imagecodecs libpng 6"] = _spliced(lambda a: bytes(imagecodecs.png_encode(a, 6)))
        out["imagecodecs spng 1"] = _spliced(lambda a: bytes(imagecodecs.spng_encode(a, 1)))
    except ImportError:
        print("imagecodecs: not installed, skipped", file=sys.stderr)
    try:
        import fpng

        out["fpng"] = _spliced(fpng.from_ndarray)
    except ImportError:
        print("fpng: not installed, skipped", file=sys.stderr)
    try:
        import pyvips

        def vips(array: np.ndarray, compression: int, filt: str) -> bytes:
            h, w, c = array.shape
            image = pyvips.Image.new_from_memory(array.tobytes(), w, h, c, "uchar")
            return bytes(image.pngsave_buffer(compression=compression, filter=filt, strip=True))

        out["pyvips 1, sub"] = _spliced(lambda a: vips(a, 1, "sub"))
        out["pyvips 6, all"] = _spliced(lambda a: vips(a, 6, "all"))
    except (ImportError, OSError):
        print("pyvips: not installed (or no libvips), skipped", file=sys.stderr)
    for name, deflater in _deflaters().items():
        for filter_kind in ("none", "sub", "up", "paeth"):
            out[f"writer: {filter_kind} + {name}"] = _writer(filter_kind, deflater)
    return out


def check(encode: Encoder, image: np.ndarray, text: dict[str, str]) -> str | None:
    """What is wrong with this encoder's output for ``image`` (None: nothing)."""
    data = encode(image, text)
    if encode(image, text) != data:
        return "two encodes differ"
    decoded = Image.open(io.BytesIO(data))
    decoded.load()
    if not np.array_equal(np.asarray(decoded.convert("RGB")), image):
        return "Pillow decodes other pixels"
    if {k: v for k, v in decoded.text.items() if k != "Software"} != text:  # type: ignore[attr-defined]
        return "text chunks lost"
    return None


def measure(encoders: dict[str, Encoder], images: list[np.ndarray], texts: list[dict[str, str]], rounds: int) -> dict:
    """Per encoder: the median over interleaved rounds of CPU microseconds per image, and mean bytes."""
    cpu: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(rounds):
        for name, encode in encoders.items():
            start = time.process_time()
            for image, text in zip(images, texts, strict=True):
                encode(image, text)
            cpu[name].append((time.process_time() - start) / len(images) * 1e6)
    out = {}
    for name, encode in encoders.items():
        sizes = [len(encode(image, text)) for image, text in zip(images, texts, strict=True)]
        out[name] = {"us": statistics.median(cpu[name]), "us_rounds": cpu[name], "bytes": statistics.mean(sizes)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--faces", type=int, default=64, help="single faces (seeds 0..N-1); grids use 16 seeds each")
    p.add_argument("--grids", type=int, default=4, help="16-face grids")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", type=Path, default=None, help="JSON (default docs/benchmarks/png-<cpu>.json)")
    args = p.parse_args(argv)
    pixels = faces(args.checkpoint, max(args.faces, 16 * args.grids))
    singles = [pixels[i] for i in range(args.faces)]
    grids = [encoding.grid(pixels[16 * g : 16 * g + 16]) for g in range(args.grids)]

    class Info:  # png_text reads only these two
        model_id, sha256 = "demo-faces-64-0123456789ab", "0123456789abcdef" * 4

    single_texts = [png_text(Info, "generate", seed=i) for i in range(args.faces)]  # type: ignore[arg-type]
    grid_texts = [png_text(Info, "generate", seeds=list(range(16 * g, 16 * g + 16))) for g in range(args.grids)]  # type: ignore[arg-type]
    encoders = candidates()
    failed = {}
    for name, encode in list(encoders.items()):
        problem = check(encode, singles[0], single_texts[0]) or check(encode, grids[0], grid_texts[0])
        if problem:
            failed[name] = problem
            print(f"{name}: {problem}; left out", file=sys.stderr)
            del encoders[name]
    face = measure(encoders, singles, single_texts, args.rounds)
    grid = measure(encoders, grids, grid_texts, args.rounds)
    ref_face, ref_grid = face["Pillow level 6 (default)"], grid["Pillow level 6 (default)"]
    print(f"{'encoder':42s} {'face us':>8s} {'face B':>7s} {'grid us':>8s} {'grid B':>8s}  vs Pillow 6: CPU, bytes")
    for name in sorted(encoders, key=lambda n: face[n]["us"]):
        f, g = face[name], grid[name]
        print(
            f"{name:42s} {f['us']:8.1f} {f['bytes']:7.0f} {g['us']:8.1f} {g['bytes']:8.0f}"
            f"  face {f['us'] / ref_face['us']:.2f} {f['bytes'] / ref_face['bytes']:.2f}"
            f"  grid {g['us'] / ref_grid['us']:.2f} {g['bytes'] / ref_grid['bytes']:.2f}"
        )
    info = machine()
    tag = re.sub(r"[^a-z0-9]+", "-", info["cpu"].lower()).strip("-")
    out = args.out or REPO / "docs" / "benchmarks" / f"png-{tag}.json"
    versions = {}
    for module in ("PIL", "isal", "zlib_ng", "deflate", "imagecodecs", "fpng", "pyvips"):
        try:
            versions[module] = getattr(__import__(module), "__version__", "?")
        except ImportError:
            versions[module] = None
    result = {"machine": info, "versions": versions, "args": {k: str(v) for k, v in vars(args).items()}}
    result |= {"face_64x64": face, "grid_16": grid, "failed": failed}
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
