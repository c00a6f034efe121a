"""The generator export: one ``.safetensors`` file that describes itself, checks itself and loads without pickle.

Layout (format_version 3): the generator's float32 state_dict (``main.N.*``, BatchNorm running stats
included), optional unit direction vectors ``direction.<name>`` (nz,), and string metadata::

    format          "dcgan-faces/generator"
    format_version  "3"                   ("2": checksum over the tensors only; "1": no directions, no
                                          checksum; both still read)
    config          JSON of DCGANConfig
    provenance      JSON object: dataset, dataset_hash, steps, ema, bn_recalibrated, created_at,
                    code_version, selection, quality, terms (see ``Provenance``)
    directions      JSON list: {name, kind, separation, source} per stored direction
    content_sha256  sha256 of every tensor (name, dtype, shape, bytes; in name order), then of every other
                    metadata key and value (version 3): a flipped bit anywhere in the file is refused

A version-3 file whose ``format_version`` is flipped to "2" fails version 2's tensor-only checksum, and
one flipped to "1" carries keys a version-1 file never had: a downgrade cannot skip the check.

The full training state (optimizers, D, RNG) is a different file owned by ``training``; this one is
what serving and sampling load, through ``load_export`` / ``load_generator`` only.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from models.atomic import atomic_write
from models.config import DCGANConfig
from models.dcgan import Generator
from models.directions import Direction, check
from models.header import CheckpointError, read_header, read_tensors

FORMAT_NAME = "dcgan-faces/generator"
FORMAT_VERSION = "3"
READS = ("1", "2", "3")
CHECKSUM_KEY = "content_sha256"
_V1_KEYS = frozenset({"format", "format_version", "config", "provenance"})
DIRECTION_PREFIX = "direction."


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
    recipe: dict[str, Any] = field(default_factory=dict)  # the training settings: width, batch, lr, amp, augment...


RUNTIME_SUFFIXES = {"torch": "", "onnxruntime": "-ort"}  # a forward's runtime, as its model id says it


@dataclass(frozen=True)
class ExportInfo:
    """What a loaded export says about itself."""

    path: str
    config: DCGANConfig
    provenance: dict[str, Any]
    sha256: str
    format_version: str = FORMAT_VERSION
    precision: str = "fp32"  # what the weights compute in once loaded (``models.precision``): part of the identity
    runtime: str = "torch"  # what runs the forward (torch | onnxruntime): part of the identity too

    @cached_property
    def model_id(self) -> str:  # cached: a server puts it on every image, and Path() is not free
        """``<file stem>-<sha256[:12]>``, then ``-bf16`` for a bf16 forward and ``-ort`` for an ONNX Runtime
        one: other pixels, so another model."""
        suffix = "" if self.precision == "fp32" else f"-{self.precision}"
        suffix += RUNTIME_SUFFIXES[self.runtime]
        return f"{Path(self.path).stem}-{self.sha256[:12]}{suffix}"


class Export(NamedTuple):
    generator: Generator  # eval mode, on the device asked for
    info: ExportInfo
    directions: tuple[Direction, ...]  # stored ones (attribute directions); SeFa is computed by the caller


def code_version() -> str:
    try:
        from importlib.metadata import version

        return version("dcgan-faces")
    except Exception:  # not installed (running from a checkout): no version to record
        return "unknown"


def content_sha256(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> str:
    """The checksum an export stores: every tensor's name, dtype, shape and bytes, in name order; then, with
    ``metadata`` (version 3), every metadata key and value but the checksum's own, as sorted JSON."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}\0{t.dtype}\0{list(t.shape)}\0".encode())
        h.update(t.numpy().tobytes())
    if metadata is not None:
        covered = {k: v for k, v in metadata.items() if k != CHECKSUM_KEY}
        h.update(b"metadata\0" + json.dumps(covered, sort_keys=True).encode())
    return h.hexdigest()


def save_generator(
    generator: Generator, path: str | os.PathLike[str], provenance: Provenance, directions: Sequence[Direction] = ()
) -> None:
    """Write ``generator`` (eval-mode weights and BN statistics) and ``directions`` atomically to ``path``."""
    tensors = {
        k: v.detach().to("cpu", torch.float32).contiguous()
        for k, v in generator.state_dict().items()
        if not k.endswith("num_batches_tracked")  # training bookkeeping, meaningless for inference
    }
    for d in directions:
        problem = check(d, generator.config.nz)
        if problem:
            raise ValueError(f"direction {d.name!r} {problem}")
        tensors[DIRECTION_PREFIX + d.name] = d.vector.detach().to("cpu", torch.float32).contiguous()
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": generator.config.to_json(),
        "provenance": json.dumps(asdict(provenance), sort_keys=True),
        "directions": json.dumps([_direction_meta(d) for d in directions]),
    }
    metadata[CHECKSUM_KEY] = content_sha256(tensors, metadata)
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=metadata))


def _direction_meta(d: Direction) -> dict[str, Any]:
    return {"name": d.name, "kind": d.kind, "separation": d.separation, "source": d.source}


def _json_field(path: Path, meta: dict[str, Any], key: str, default: str, kind: type) -> Any:
    try:
        value = json.loads(str(meta.get(key, default)))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: invalid {key} in metadata: {e}") from None
    if not isinstance(value, kind):
        raise CheckpointError(f"{path}: invalid {key} in metadata (not a JSON {kind.__name__})")
    return value


def _read_metadata(path: Path, header: dict[str, Any]) -> tuple[DCGANConfig, dict[str, Any], str, list[Any]]:
    """(config, provenance, format version, direction entries) from a header, validated."""
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: not a dcgan-faces generator export (metadata format is missing)")
    version = meta.get("format_version")
    if version not in READS:
        raise CheckpointError(f"{path}: unsupported format_version {version!r} (this code reads {', '.join(READS)})")
    try:
        config = DCGANConfig.from_json(str(meta.get("config")))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: invalid config in metadata: {e}") from None
    provenance = _json_field(path, meta, "provenance", "{}", dict)
    if version == "1" and not meta.keys() <= _V1_KEYS:  # a later file whose version was flipped (or forged) to 1
        extra = sorted(meta.keys() - _V1_KEYS)[0]
        raise CheckpointError(f"{path}: format_version 1 export with key {extra!r} that version 1 never had (corrupt?)")
    entries = _json_field(path, meta, "directions", "[]", list) if version != "1" else []
    if version != "1" and not isinstance(meta.get(CHECKSUM_KEY), str):
        raise CheckpointError(f"{path}: format_version {version} export without its content_sha256")
    names = [e.get("name") if isinstance(e, dict) else None for e in entries]
    if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise CheckpointError(f"{path}: invalid directions in metadata (each needs a unique string name)")
    return config, provenance, str(version), entries


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_export_info(path: str | os.PathLike[str]) -> ExportInfo:
    """Validate the header and metadata of an export without loading its weights."""
    path = Path(path)
    header, _ = read_header(path)
    config, provenance, version, _ = _read_metadata(path, header)
    return ExportInfo(str(path), config, provenance, _sha256(path), version)


def load_export(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Export:
    """Load and fully validate an export: the generator in eval mode on ``device``, and its directions.

    Raises ``CheckpointError`` naming the file and the problem: not a safetensors file, truncated, not
    a dcgan-faces export, wrong format version, invalid config, missing/extra/mis-shaped tensor, a
    content checksum that does not match (a flipped bit), non-finite weights, a direction that is
    not a finite unit vector. Nothing is ever unpickled, and nothing is built before the checks pass.
    """
    path = Path(path)
    header, data_size = read_header(path)
    config, provenance, version, entries = _read_metadata(path, header)
    with torch.device("meta"):  # shapes only: an absurd config cannot allocate memory here
        reference = Generator(config).state_dict()
    expected = {k: tuple(v.shape) for k, v in reference.items() if not k.endswith("num_batches_tracked")}
    expected |= {DIRECTION_PREFIX + e["name"]: (config.nz,) for e in entries}
    tensors = read_tensors(path, header, expected, data_size)
    meta = header["__metadata__"]
    if version != "1" and content_sha256(tensors, meta if version == "3" else None) != meta[CHECKSUM_KEY]:
        covers = "tensor data or metadata" if version == "3" else "tensor data"
        raise CheckpointError(f"{path}: content checksum mismatch: the {covers} is corrupt (a flipped bit?)")
    for name, tensor in tensors.items():
        if not name.startswith(DIRECTION_PREFIX) and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: tensor {name!r} has non-finite values")
    directions = tuple(_direction(path, e, tensors[DIRECTION_PREFIX + e["name"]], config.nz) for e in entries)
    generator = Generator(config)
    generator.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(DIRECTION_PREFIX)}, strict=False)
    generator.eval().requires_grad_(False)  # num_batches_tracked kept its default above
    info = ExportInfo(str(path), config, provenance, _sha256(path), version)
    return Export(generator.to(device), info, directions)


def _direction(path: Path, entry: dict[str, Any], vector: torch.Tensor, nz: int) -> Direction:
    separation = entry.get("separation")
    direction = Direction(
        name=entry["name"],
        vector=vector,
        kind=str(entry.get("kind")),
        separation=float(separation) if isinstance(separation, (int, float)) else separation,
        source=str(entry.get("source", ""))[:200],
    )
    problem = check(direction, nz)
    if problem:
        raise CheckpointError(f"{path}: direction {direction.name!r} {problem}")
    return direction


def load_generator(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> tuple[Generator, ExportInfo]:
    """``load_export`` without the directions: (generator in eval mode on ``device``, its info)."""
    export = load_export(path, device)
    return export.generator, export.info


def upgrade_export(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Rewrite a version-1 or -2 export as version 3: the same tensors and metadata, the version bumped and
    the checksum re-computed over both. ``src`` is fully validated first (its own checksum included), so
    a corrupt file is never sealed as a good one. ``python -c "from models.checkpoint import
    upgrade_export as u; u('old.safetensors', 'new.safetensors')"``"""
    load_export(src)  # refuses anything a loader would refuse
    with safe_open(str(src), framework="pt", device="cpu") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
        metadata = dict(f.metadata())
    metadata.setdefault("directions", "[]")  # version 1 had none
    metadata |= {"format_version": FORMAT_VERSION}
    metadata[CHECKSUM_KEY] = content_sha256(tensors, metadata)
    atomic_write(Path(dst), lambda tmp: save_file(tensors, tmp, metadata=metadata))
