"""Hostile checkpoint files meet the service: ``python -m app`` exits 1 at startup with one line
naming the file and the problem, and never executes anything inside the file.

tests/models/test_checkpoint.py covers ``load_generator``'s refusals one by one; this file covers
the service's startup path (``app.__main__.main``) for each class of hostile file, plus exhaustive
byte flips and truncations through ``Engine.preflight``.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from app.__main__ import main
from app.compute.engine import Engine, StartupError
from models.checkpoint import content_sha256
from tests.live_server import REPO, server_env


class Payload:
    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self):  # type: ignore[no-untyped-def]  # runs on unpickle, if anything ever unpickled it
        return (os.system, (f"touch {self.canary}",))


def write_flipped(good: Path, dst: Path) -> Path:
    """One bit of one weight flipped: still finite, still the right shape; only the checksum can tell."""
    data = bytearray(good.read_bytes())
    data[8 + struct.unpack("<Q", data[:8])[0] + 64] ^= 0x01
    dst.write_bytes(bytes(data))
    return dst


def read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())  # noqa: SIM118


def write(dst: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> Path:
    """A file with these tensors and metadata; its checksum matches them, so only the named problem is wrong."""
    if "content_sha256" in meta:
        meta = {**meta, "content_sha256": content_sha256(tensors, meta)}
    save_file(tensors, str(dst), metadata=meta)
    return dst


def with_header(src: Path, dst: Path, edit: Callable[[dict], None]) -> Path:  # type: ignore[type-arg]
    """Rewrite the JSON header of ``src`` (same data section) after ``edit`` mutates it."""
    data = src.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    edit(header)
    raw = json.dumps(header).encode()
    dst.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])
    return dst


def hostile_files(good: Path, d: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, a word the one-line error must contain)."""
    tensors, meta = read(good)
    data = good.read_bytes()
    canary = d / "canary"
    (d / "pickle.safetensors").write_bytes(pickle.dumps(Payload(canary)))
    torch.save({"main.0.weight": Payload(canary)}, d / "torch-zip.safetensors")
    flipped = bytearray(data)
    flipped[8 + 2] ^= 0xFF  # inside the header JSON
    (d / "flipped.safetensors").write_bytes(bytes(flipped))
    (d / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    (d / "empty.safetensors").write_bytes(b"")
    (d / "huge-header.safetensors").write_bytes(struct.pack("<Q", 2**63) + b"{}")
    (d / "a-directory.safetensors").mkdir()

    def far(header: dict) -> None:  # type: ignore[type-arg]
        header["main.0.weight"]["data_offsets"] = [0, 2**62]

    def as_f16_declared(header: dict) -> None:  # type: ignore[type-arg]
        header["main.0.weight"]["dtype"] = "F64"

    def bad_config(config: str) -> dict[str, str]:
        return meta | {"config": config}

    return {
        "pickle with payload": (d / "pickle.safetensors", "safetensors"),
        "torch.save zip with payload": (d / "torch-zip.safetensors", "safetensors"),
        "header byte flip": (d / "flipped.safetensors", "corrupt"),
        "truncated": (d / "truncated.safetensors", "truncated"),
        "zero bytes": (d / "empty.safetensors", "truncated"),
        "huge declared header": (d / "huge-header.safetensors", "header length"),
        "huge declared tensor size": (with_header(good, d / "far.safetensors", far), "outside the file"),
        "declared dtype mismatch": (with_header(good, d / "f64.safetensors", as_f16_declared), "dtype"),
        "wrong shape": (write(d / "shape.safetensors", tensors | {"main.0.weight": torch.zeros(2, 2)}, meta), "shape"),
        "wrong dtype": (
            write(d / "dtype.safetensors", tensors | {"main.0.weight": tensors["main.0.weight"].half()}, meta),
            "dtype",
        ),
        "non-finite weights": (
            write(d / "nan.safetensors", tensors | {"main.0.weight": tensors["main.0.weight"] * float("nan")}, meta),
            "non-finite",
        ),
        "wrong version": (write(d / "v99.safetensors", tensors, meta | {"format_version": "99"}), "format_version"),
        "flipped weight bit": (write_flipped(good, d / "flip.safetensors"), "content checksum mismatch"),
        "no format metadata": (write(d / "plain.safetensors", tensors, {}), "not a dcgan-faces"),
        "absurd config (nz 1e9)": (
            write(d / "nz.safetensors", tensors, bad_config('{"nz": 1000000000, "ngf": 8, "ndf": 8}')),
            "invalid config",
        ),
        "absurd config (image_size 2**20)": (
            write(d / "size.safetensors", tensors, bad_config('{"nz": 16, "ngf": 8, "ndf": 8, "image_size": 1048576}')),
            "invalid config",
        ),
        "config not JSON": (write(d / "cfg.safetensors", tensors, bad_config("{nz: 16")), "invalid config"),
        "a directory": (d / "a-directory.safetensors", "no such file"),
        "/dev/zero": (Path("/dev/zero"), "/dev/zero"),
    }


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], checkpoint: Path) -> tuple[int, str]:
    for key in [k for k in os.environ if k.startswith("DCGAN_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("DCGAN_CHECKPOINT", str(checkpoint))
    monkeypatch.setenv("DCGAN_DEVICE", "cpu")
    code = main()
    return code, capsys.readouterr().err.strip()


def test_every_hostile_file_class_stops_the_service_with_one_line(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = hostile_files(checkpoint, tmp_path)
    for name, (path, word) in cases.items():
        code, err = run_main(monkeypatch, capsys, path)
        assert code == 1, f"{name}: exit {code}"
        assert len(err.splitlines()) == 1 and err.startswith("dcgan-serve: error: "), f"{name}: {err!r}"
        assert str(path) in err and word in err, f"{name}: {err!r}"
    assert not (tmp_path / "canary").exists()


def test_the_real_process_exits_1_and_runs_no_payload(checkpoint: Path, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps(Payload(canary)))
    proc = subprocess.run(
        [sys.executable, "-m", "app"], cwd=REPO, env=server_env(checkpoint=str(evil), device="cpu"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and str(evil) in lines[0], proc.stderr
    assert not canary.exists()


def refused_or_sound(path: Path, original: torch.Tensor | None = None) -> str:
    """Loading either refuses with a one-line StartupError or gives a generator whose images are exactly
    ``original`` (the unmutated file's): the content checksum lets a flip change metadata text only."""
    try:
        engine = Engine.load(str(path), "cpu")
    except StartupError as e:
        assert "\n" not in str(e) and str(path) in str(e)
        return "refused"
    images = engine.forward(torch.zeros(2, engine.nz))
    assert original is None or torch.equal(images, original), "a mutated file that loads rendered other pixels"
    return "loaded"


@pytest.mark.slow
def test_byte_flips_anywhere_and_truncations_at_any_length(checkpoint: Path, tmp_path: Path) -> None:
    """150 random bit flips (half in the header, half anywhere) and 100 truncation points: never anything
    but a one-line refusal or the very same generator. Every flip in the tensor data is refused (the
    content checksum); a flip in the header that still parses can only change metadata, never pixels."""
    data = checkpoint.read_bytes()
    engine = Engine.load(str(checkpoint), "cpu")
    original = engine.forward(torch.zeros(2, engine.nz))  # (2, H, W, C): what every file that loads must give
    header_end = 8 + struct.unpack("<Q", data[:8])[0]
    rng = random.Random(7)
    outcomes: dict[str, int] = {"refused": 0, "loaded": 0}
    target = tmp_path / "mutant.safetensors"
    for i in range(150):
        mutated = bytearray(data)
        where = rng.randrange(header_end if i % 2 else len(data))
        mutated[where] ^= 1 << rng.randrange(8)
        target.write_bytes(bytes(mutated))
        outcome = refused_or_sound(target, original)
        assert where < header_end or outcome == "refused", f"a flip in the tensor data at byte {where} loaded"
        outcomes[outcome] += 1
    for keep in sorted(rng.sample(range(len(data)), 100)):
        target.write_bytes(data[:keep])
        assert refused_or_sound(target) == "refused", keep
    print(f"\nbyte flips: {outcomes}; 100 truncations refused")
    assert outcomes["refused"] > 0
