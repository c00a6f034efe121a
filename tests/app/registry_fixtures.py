"""Tiny exports that differ (init seeds), a models directory with a manifest, and hostile candidates."""

from __future__ import annotations

import json
import os
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from models import Generator, Provenance, init_weights, save_generator
from models.checkpoint import content_sha256
from tests.app.conftest import TINY

ADMIN = "admin-token-0123456789"


def export(path: Path, seed: int, dataset: str = "synthetic") -> Path:
    """A tiny generator with the paper's init from ``seed``: another seed, other faces."""
    torch.manual_seed(seed)
    generator = Generator(TINY)
    generator.apply(init_weights)
    save_generator(generator.eval(), path, Provenance(dataset=dataset, steps=seed, quality={"swd_x1e3": 10.0 + seed}))
    return path


def manifest(folder: Path, models: dict[str, str], default: str) -> Path:
    path = folder / "models.json"
    path.write_text(json.dumps({"default": default, "models": {n: {"file": f} for n, f in models.items()}}))
    return path


def _rewrite(src: Path, dst: Path, edit: Callable[[dict[str, torch.Tensor]], None], reseal: bool = True) -> Path:
    with safe_open(str(src), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        meta = dict(f.metadata())
    edit(tensors)
    if reseal:
        meta["content_sha256"] = content_sha256(tensors, meta)
    save_file(tensors, str(dst), metadata=meta)
    return dst


class _Payload:
    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.canary}",))


def hostile(good: Path, folder: Path) -> dict[str, tuple[str, str]]:
    """case -> (file name in ``folder``, a word the refusal must contain)."""
    data = bytearray(good.read_bytes())
    header_end = 8 + struct.unpack("<Q", data[:8])[0]
    data[header_end + 40] ^= 0x04
    (folder / "corrupt.safetensors").write_bytes(bytes(data))
    (folder / "pickle.safetensors").write_bytes(pickle.dumps(_Payload(folder / "canary")))

    def other_width(t: dict[str, torch.Tensor]) -> None:
        t["main.0.weight"] = torch.zeros(TINY.nz, 16, 4, 4)  # a generator of another ngf under this config

    def nan_weights(t: dict[str, torch.Tensor]) -> None:
        t["main.0.weight"] = t["main.0.weight"] * float("nan")

    def nan_output(t: dict[str, torch.Tensor]) -> None:
        t["main.1.running_var"] = -torch.ones_like(t["main.1.running_var"])  # finite weights, sqrt(-1) faces

    _rewrite(good, folder / "wrong-arch.safetensors", other_width)
    _rewrite(good, folder / "nan.safetensors", nan_weights)
    _rewrite(good, folder / "nan-output.safetensors", nan_output)
    return {
        "corrupt file (a flipped bit)": ("corrupt.safetensors", "checksum"),
        "pickle": ("pickle.safetensors", "safetensors"),
        "wrong architecture": ("wrong-arch.safetensors", "shape"),
        "NaN weights": ("nan.safetensors", "non-finite"),
        "NaN output": ("nan-output.safetensors", "not finite"),
        "missing file": ("absent.safetensors", "no such file"),
    }
