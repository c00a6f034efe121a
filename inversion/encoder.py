"""The encoder E: image -> latent, and its companion file, whose one owner is this module.

E is the generator's discriminator turned into a regressor: the same strided-conv stack sized from the
generator's ``DCGANConfig`` (N, C, S, S) -> (N, width*2^blocks, 4, 4), then a 4x4 conv to (N, nz). It
gives a first guess of the latent of a face; ``inversion.refine`` polishes it.

File layout (``<export stem>.encoder.safetensors`` beside the export, format_version 1): E's float32
state_dict (BatchNorm statistics included) and string metadata::

    format            "dcgan-faces/encoder"
    format_version    "1"
    config            JSON of EncoderConfig
    generator_sha256  SHA-256 of the generator export file E was trained for (one encoder, one export)
    generator_id      that export's model id ("<stem>-<sha[:12]>"), for people reading the header
    provenance        JSON object: data, steps, losses, created_at ...
    content_sha256    sha256 over every tensor (as the export's) and every other metadata field

A file that is not a safetensors file, is not an encoder, is corrupt (a flipped bit in a tensor or in
the metadata), was trained for another export or does not fit the generator is refused with a
``CheckpointError`` naming the file and the problem; nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from models.atomic import atomic_write
from models.checkpoint import ExportInfo, content_sha256
from models.config import IMAGE_SIZES, DCGANConfig
from models.header import CheckpointError, read_header, read_tensors

FORMAT_NAME = "dcgan-faces/encoder"
FORMAT_VERSION = "1"
SUFFIX = ".encoder.safetensors"
DEFAULT_WIDTH = 32  # channels of the first block: ~1.1 M parameters, 4.5 MB at 64x64 with nz 100
_MAX_WIDTH = 1024


@dataclass(frozen=True)
class EncoderConfig:
    """Sizes of an encoder; ``nz``, ``channels`` and ``image_size`` must be its generator's."""

    nz: int = 100
    channels: int = 3
    image_size: int = 64
    width: int = DEFAULT_WIDTH

    def __post_init__(self) -> None:
        for name in ("nz", "width"):
            value = getattr(self, name)
            if type(value) is not int or not 1 <= value <= _MAX_WIDTH:
                raise ValueError(f"EncoderConfig.{name} must be an int in 1..{_MAX_WIDTH}, got {value!r}")
        if type(self.channels) is not int or self.channels not in (1, 3):
            raise ValueError(f"EncoderConfig.channels must be 1 or 3, got {self.channels!r}")
        if type(self.image_size) is not int or self.image_size not in IMAGE_SIZES:
            raise ValueError(f"EncoderConfig.image_size must be one of {IMAGE_SIZES}, got {self.image_size!r}")

    @classmethod
    def for_generator(cls, config: DCGANConfig, width: int = DEFAULT_WIDTH) -> EncoderConfig:
        return cls(nz=config.nz, channels=config.channels, image_size=config.image_size, width=width)

    def fits(self, config: DCGANConfig) -> bool:
        return (self.nz, self.channels, self.image_size) == (config.nz, config.channels, config.image_size)

    @property
    def n_blocks(self) -> int:
        return self.image_size.bit_length() - 1 - 3  # as DCGANConfig: 3 at 64x64

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EncoderConfig:
        """Build from untrusted JSON: unknown or missing keys are errors, values are validated."""
        data = json.loads(text)
        if not isinstance(data, dict) or set(data) != set(cls.__dataclass_fields__):
            raise ValueError(f"EncoderConfig must be an object with keys {sorted(cls.__dataclass_fields__)}")
        return cls(**data)


class Encoder(nn.Module):
    """image (N, channels, S, S) in [-1, 1] -> latent (N, nz)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        width = config.width
        layers: list[nn.Module] = [
            nn.Conv2d(config.channels, width, 4, 2, 1, bias=False),  # (N, w, S/2, S/2)
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for _ in range(config.n_blocks):  # each halves H, W and doubles channels: (N, 8w, 4, 4) at 64x64
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2)]
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            width *= 2
        layers.append(nn.Conv2d(width, config.nz, 4, 1, 0))  # (N, nz, 1, 1)
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten(1)  # (N, nz)


@dataclass(frozen=True)
class EncoderInfo:
    """What a loaded encoder file says about itself."""

    path: str
    config: EncoderConfig
    generator_sha256: str
    generator_id: str
    provenance: dict[str, Any]


def default_path(export_path: str | os.PathLike[str]) -> Path:
    """Where an export's encoder lives: ``demo-faces-64.safetensors`` -> ``demo-faces-64.encoder.safetensors``."""
    path = Path(export_path)
    return path.with_name(path.name.removesuffix(".safetensors") + SUFFIX)


def _checksum(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> str:
    """The tensors' checksum (as the export's) chained with every metadata field but the checksum itself."""
    h = hashlib.sha256(content_sha256(tensors).encode())
    for key in sorted(meta):
        if key != "content_sha256":
            h.update(f"\0{key}\0{meta[key]}".encode())
    return h.hexdigest()


def _tensors(encoder: Encoder) -> dict[str, torch.Tensor]:
    return {
        k: v.detach().to("cpu", torch.float32).contiguous()
        for k, v in encoder.state_dict().items()
        if not k.endswith("num_batches_tracked")  # training bookkeeping, meaningless for inference
    }


def save_encoder(
    encoder: Encoder, path: str | os.PathLike[str], generator: ExportInfo, provenance: dict[str, Any]
) -> None:
    """Write ``encoder`` (eval weights, BN statistics) atomically to ``path``, bound to the export ``generator``."""
    if not encoder.config.fits(generator.config):
        raise ValueError(f"encoder {encoder.config} does not fit generator {generator.config}")
    tensors = _tensors(encoder)
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": encoder.config.to_json(),
        "generator_sha256": generator.sha256,
        "generator_id": generator.model_id,
        "provenance": json.dumps(provenance, sort_keys=True),
    }
    meta["content_sha256"] = _checksum(tensors, meta)
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=meta))


def _read_meta(path: Path, header: dict[str, Any]) -> tuple[dict[str, str], EncoderConfig, dict[str, Any]]:
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: not a dcgan-faces encoder (metadata format is missing)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unsupported encoder format_version {meta.get('format_version')!r}")
    missing = [
        k for k in ("config", "generator_sha256", "generator_id", "provenance", "content_sha256") if k not in meta
    ]
    if missing:
        raise CheckpointError(f"{path}: encoder metadata lacks {missing[0]!r}")
    try:
        config = EncoderConfig.from_json(str(meta["config"]))
        provenance = json.loads(str(meta["provenance"]))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: invalid encoder metadata: {e}") from None
    if not isinstance(provenance, dict):
        raise CheckpointError(f"{path}: invalid encoder provenance (not a JSON object)")
    return {str(k): str(v) for k, v in meta.items()}, config, provenance


def load_encoder(
    path: str | os.PathLike[str], expect_generator: ExportInfo | str | None = None, device: str | torch.device = "cpu"
) -> tuple[Encoder, EncoderInfo]:
    """Load and validate an encoder file: (encoder in eval mode, frozen, on ``device``; its info).

    ``expect_generator``: the export it must belong to (its ``ExportInfo``, which also checks the sizes,
    or its SHA-256). Raises ``CheckpointError`` naming the file and the problem.
    """
    path = Path(path)
    header, data_size = read_header(path)
    meta, config, provenance = _read_meta(path, header)
    with torch.device("meta"):  # shapes only: an absurd config cannot allocate memory here
        reference = Encoder(config).state_dict()
    expected = {k: tuple(v.shape) for k, v in reference.items() if not k.endswith("num_batches_tracked")}
    tensors = read_tensors(path, header, expected, data_size)
    if _checksum(tensors, meta) != meta["content_sha256"]:
        raise CheckpointError(f"{path}: content checksum mismatch: the tensors or metadata are corrupt")
    if not all(torch.isfinite(t).all() for t in tensors.values()):
        raise CheckpointError(f"{path}: non-finite weights")
    info = EncoderInfo(str(path), config, meta["generator_sha256"], meta["generator_id"], provenance)
    _check_generator(path, info, expect_generator)
    encoder = Encoder(config)
    encoder.load_state_dict(tensors, strict=False)  # num_batches_tracked keeps its default
    return encoder.eval().requires_grad_(False).to(device), info


def _check_generator(path: Path, info: EncoderInfo, expect: ExportInfo | str | None) -> None:
    if expect is None:
        return
    sha = expect if isinstance(expect, str) else expect.sha256
    if sha != info.generator_sha256:
        raise CheckpointError(
            f"{path}: trained for generator export {info.generator_id} (sha256 {info.generator_sha256[:12]}), "
            f"not this one (sha256 {sha[:12]}): train one for it with dcgan-train-encoder"
        )
    if isinstance(expect, ExportInfo) and not info.config.fits(expect.config):
        raise CheckpointError(f"{path}: encoder sizes {info.config} do not fit the generator's {expect.config}")
