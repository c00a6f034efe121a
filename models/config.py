"""The one size object every network is built from (see nanoGPT's ``GPTConfig``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

IMAGE_SIZES = (32, 64, 128)
_MAX_WIDTH = 1024  # nz/ngf/ndf above this are absurd for a DCGAN and would allocate gigabytes


@dataclass(frozen=True)
class DCGANConfig:
    """Sizes of a DCGAN. Defaults are the paper's / PyTorch tutorial's 64x64 model."""

    nz: int = 100  # latent length
    ngf: int = 64  # generator width at the last block
    ndf: int = 64  # discriminator width at the first block
    channels: int = 3
    image_size: int = 64

    def __post_init__(self) -> None:
        for name in ("nz", "ngf", "ndf"):
            value = getattr(self, name)
            if type(value) is not int or not 1 <= value <= _MAX_WIDTH:
                raise ValueError(f"DCGANConfig.{name} must be an int in 1..{_MAX_WIDTH}, got {value!r}")
        if type(self.channels) is not int or self.channels not in (1, 3):
            raise ValueError(f"DCGANConfig.channels must be 1 or 3, got {self.channels!r}")
        if self.image_size not in IMAGE_SIZES or type(self.image_size) is not int:
            raise ValueError(f"DCGANConfig.image_size must be one of {IMAGE_SIZES}, got {self.image_size!r}")

    @property
    def n_blocks(self) -> int:
        """Number of 2x up/down-sampling blocks between 4x4 and the image (3 at 64x64)."""
        return self.image_size.bit_length() - 1 - 3  # log2(size) - log2(8)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> DCGANConfig:
        """Build from untrusted data: unknown or missing keys are errors, values are validated."""
        if not isinstance(data, dict):
            raise ValueError(f"DCGANConfig must be a JSON object, got {type(data).__name__}")
        expected = set(cls.__dataclass_fields__)
        if set(data) != expected:
            raise ValueError(f"DCGANConfig keys must be {sorted(expected)}, got {sorted(map(str, data))}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> DCGANConfig:
        return cls.from_dict(json.loads(text))
