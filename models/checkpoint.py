"""The generator export: one ``.safetensors`` file that describes itself and loads without pickle.

Layout: the generator's float32 state_dict (``main.N.*``, BatchNorm running stats included) plus
string metadata::

    format          "dcgan-faces/generator"
    format_version  "1"
    config          JSON of DCGANConfig
    provenance      JSON object: dataset, dataset_hash, steps, ema, bn_recalibrated,
                    created_at, code_version, selection, quality, terms (see ``Provenance``)

The full training state (optimizers, D, RNG) is a different file owned by ``training``; this
one is what serving and sampling load, through ``load_generator`` only.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from models.atomic import atomic_write
from models.config import DCGANConfig
from models.dcgan import Generator

FORMAT_NAME = "dcgan-faces/generator"
FORMAT_VERSION = "1"
_MAX_HEADER_BYTES = 1 << 20  # a DCGAN header is a few KB; refuse to parse megabytes of JSON
_ST_DTYPES = {"F32": torch.float32}
_ITEMSIZE = {"F32": 4}


class CheckpointError(ValueError):
    """A file that is not a valid generator export; the message names the file and the problem."""


@dataclass(frozen=True)
class Provenance:
    """Where an exported generator came from (stored as JSON in the file's metadata)."""

    dataset: str = "unknown"
    dataset_hash: str = ""
    steps: int = 0
    ema: bool = False
    bn_recalibrated: bool = False
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    code_version: str = ""
    selection: dict[str, Any] = field(default_factory=dict)  # max_images, holdout, the files trained on / held out
    quality: dict[str, Any] = field(default_factory=dict)  # e.g. SWD x 10^3 against the held-out images
    terms: str = ""  # usage terms the weights inherit from their data (CelebA: non-commercial research only)


@dataclass(frozen=True)
class ExportInfo:
    """What a loaded export says about itself."""

    path: str
    config: DCGANConfig
    provenance: dict[str, Any]
    sha256: str

    @property
    def model_id(self) -> str:
        return f"{Path(self.path).stem}-{self.sha256[:12]}"


def code_version() -> str:
    try:
        from importlib.metadata import version

        return version("dcgan-faces")
    except Exception:  # not installed (running from a checkout): no version to record
        return "unknown"


def save_generator(generator: Generator, path: str | os.PathLike[str], provenance: Provenance) -> None:
    """Write ``generator`` (eval-mode weights and BN statistics) atomically to ``path``."""
    tensors = {
        k: v.detach().to("cpu", torch.float32).contiguous()
        for k, v in generator.state_dict().items()
        if not k.endswith("num_batches_tracked")  # training bookkeeping, meaningless for inference
    }
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": generator.config.to_json(),
        "provenance": json.dumps(asdict(provenance), sort_keys=True),
    }
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=metadata))


def _read_header(path: Path) -> tuple[dict[str, Any], int]:
    """Parse and bounds-check the safetensors header; returns (header, data section size)."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{path}: truncated or not a safetensors file ({size} bytes)")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > min(_MAX_HEADER_BYTES, size - 8):
            raise CheckpointError(f"{path}: not a safetensors file or truncated (header length {header_len})")
        raw = f.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt safetensors header (not an object)")
    return header, size - 8 - header_len


def _read_metadata(path: Path, header: dict[str, Any]) -> tuple[DCGANConfig, dict[str, Any]]:
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: not a dcgan-faces generator export (metadata format is missing)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: unsupported format_version {meta.get('format_version')!r} (this code reads {FORMAT_VERSION!r})"
        )
    try:
        config = DCGANConfig.from_json(str(meta.get("config")))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: invalid config in metadata: {e}") from None
    try:
        provenance = json.loads(str(meta.get("provenance", "{}")))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: invalid provenance in metadata: {e}") from None
    if not isinstance(provenance, dict):
        raise CheckpointError(f"{path}: invalid provenance in metadata (not an object)")
    return config, provenance


def _check_tensor_table(path: Path, header: dict[str, Any], expected: dict[str, torch.Size], data_size: int) -> None:
    """Every expected tensor present, F32, the right shape, and inside the file; nothing extra."""
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    missing = sorted(set(expected) - set(entries))
    extra = sorted(set(entries) - set(expected))
    if missing:
        raise CheckpointError(f"{path}: missing tensor {missing[0]!r} ({len(missing)} missing)")
    if extra:
        raise CheckpointError(f"{path}: unexpected tensor {extra[0]!r} ({len(extra)} unexpected)")
    for name, shape in expected.items():
        problem = _entry_problem(entries[name], shape, data_size)
        if problem:
            raise CheckpointError(f"{path}: tensor {name!r} {problem}")


def _entry_problem(entry: Any, shape: torch.Size, data_size: int) -> str | None:
    if not isinstance(entry, dict) or entry.get("dtype") not in _ST_DTYPES:
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        return f"has dtype {dtype}, expected F32"
    if list(entry.get("shape", [])) != list(shape):
        return f"has shape {entry.get('shape')}, expected {list(shape)}"
    offsets = entry.get("data_offsets")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
        return "has no valid data_offsets"
    begin, end = offsets
    if begin < 0 or end - begin != math.prod(shape) * _ITEMSIZE[entry["dtype"]] or end > data_size:
        return "lies outside the file (truncated or corrupt)"
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_export_info(path: str | os.PathLike[str]) -> ExportInfo:
    """Validate the header and metadata of an export without loading its weights."""
    path = Path(path)
    header, _ = _read_header(path)
    config, provenance = _read_metadata(path, header)
    return ExportInfo(str(path), config, provenance, _sha256(path))


def load_generator(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> tuple[Generator, ExportInfo]:
    """Load and fully validate an export; returns the generator in eval mode on ``device``.

    Raises ``CheckpointError`` naming the file and the problem: not a safetensors file,
    truncated, not a dcgan-faces export, wrong format version, invalid config, missing/extra/
    mis-shaped tensor, non-finite weights. Nothing is ever unpickled.
    """
    path = Path(path)
    header, data_size = _read_header(path)
    config, provenance = _read_metadata(path, header)
    with torch.device("meta"):  # shapes only: an absurd config cannot allocate memory here
        reference = Generator(config).state_dict()
    expected = {k: v.shape for k, v in reference.items() if not k.endswith("num_batches_tracked")}
    _check_tensor_table(path, header, expected, data_size)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            state = {k: f.get_tensor(k) for k in expected}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: unreadable tensor data ({e})") from None
    for name, tensor in state.items():
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: tensor {name!r} has non-finite values")
    generator = Generator(config)
    generator.load_state_dict(state, strict=False)  # num_batches_tracked keeps its default
    generator.eval().requires_grad_(False)
    info = ExportInfo(str(path), config, provenance, _sha256(path))
    return generator.to(device), info
