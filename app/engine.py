"""The loaded generator: device choice, loading through ``models.load_generator``, warm-up, forward.

``forward`` is called from the batcher's single worker thread, one call at a time; it renders
through ``models.sampling.render`` (eval mode, inference mode, padded to a multiple of 8 rows),
so a latent's pixels do not depend on the batch it shares.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch

from models import ExportInfo, Generator, load_generator
from models.sampling import padded_rows, render

log = logging.getLogger("app.engine")


class StartupError(RuntimeError):
    """The service cannot start; the message is one line naming the file or device and the problem."""


def resolve_device(spec: str, *, announce: bool = True) -> torch.device:
    """``auto|cpu|cuda|cuda:N`` -> a device that exists. Asking for CUDA without it is an error, not a fallback."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if announce:
            log.warning("device=auto: no CUDA device found, serving on the CPU (slow; DCGAN_DEVICE=cpu silences this)")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise StartupError(f"device {spec!r} was requested but CUDA is not available (set DCGAN_DEVICE=cpu or auto)")
    device = torch.device(spec)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise StartupError(
            f"device {spec!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)"
        )
    return device


def warmup_sizes(max_batch_images: int) -> list[int]:
    """Distinct padded batch sizes the batcher will run: powers of two up to the cap, padded to 8."""
    sizes = {padded_rows(min(2**k, max_batch_images)) for k in range(max_batch_images.bit_length() + 1)}
    return sorted(sizes)


@dataclass
class Engine:
    """A generator in eval mode on its device, with what the service reports about it."""

    generator: Generator
    info: ExportInfo
    device: torch.device
    dtype: torch.dtype = torch.float32

    @classmethod
    def preflight(cls, checkpoint: str, device_spec: str) -> None:
        """Validate the device and the whole export (on the CPU) without keeping anything; ``StartupError`` if not."""
        resolve_device(device_spec, announce=False)
        cls._load(checkpoint, torch.device("cpu"))

    @classmethod
    def load(cls, checkpoint: str, device_spec: str) -> Engine:
        """Load the export onto the device; raises ``StartupError`` with one clear line."""
        return cls._load(checkpoint, resolve_device(device_spec))

    @classmethod
    def _load(cls, checkpoint: str, device: torch.device) -> Engine:
        try:
            generator, info = load_generator(checkpoint, device)
        except ValueError as e:  # CheckpointError (missing, truncated, corrupt, wrong format) names the file
            raise StartupError(str(e)) from None
        except (OSError, RuntimeError) as e:
            raise StartupError(f"{checkpoint}: cannot load onto {device}: {e}") from None
        return cls(generator, info, device)

    @property
    def nz(self) -> int:
        return self.info.config.nz

    @property
    def image_size(self) -> int:
        return self.info.config.image_size

    def warm_up(self, max_batch_images: int) -> float:
        """Run each batch size once (cuDNN autotuning, allocator growth); returns the seconds spent."""
        start = time.perf_counter()
        for rows in warmup_sizes(max_batch_images):
            render(self.generator, torch.zeros(rows, self.nz))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (N, nz) float32 -> images (N, H, W, C) uint8 on the CPU."""
        return render(self.generator, z)
