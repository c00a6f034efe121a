"""The loaded generator: device choice, loading through ``models.load_export``, directions, warm-up, forward.

``forward`` is called from the batcher's worker threads (``forward_workers`` at a time); it renders
through ``models.sampling.render`` (eval mode, inference mode, padded to a multiple of 8 rows),
so a latent's pixels do not depend on the batch it shares. On CUDA that takes more: cuDNN's
algorithm depends on the batch size, so every forward runs at one fixed shape (``fixed_shape``),
with deterministic cuDNN and IEEE fp32 (``models.cuda.exact_convolutions``), and warm-up runs
every shape a forward can have. On the CPU in fp32 the generator runs channels-last after its first
layer where this machine gives that the same floats at every row count a forward computes
(``in_fastest_layout``, ``models.layout``): fewer copies, the same pixels.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace

import torch

from app.compute.onnx_forward import OnnxForward, OnnxUnavailable, check_runtime
from app.runtime.cpu_quota import usable_cpus
from models import Direction, ExportInfo, Generator, load_export
from models.cuda import capability_problem, exact_convolutions, unavailable_reason
from models.directions import label_sefa, sefa
from models.layout import ChannelsLastTail, fastest_same_floats
from models.precision import DTYPES, cast, check_bf16, cuda_bf16_native
from models.sampling import PAD_MULTIPLE, render

log = logging.getLogger("app.engine")


class StartupError(RuntimeError):
    """The service cannot start; the message is one line naming the file or device and the problem."""


def resolve_device(spec: str, *, announce: bool = True) -> torch.device:
    """``auto|cpu|cuda|cuda:N`` -> a device that exists. Asking for CUDA without it is an error, not a fallback."""
    if spec == "auto" and torch.cuda.is_available():
        spec = "cuda"  # and checked below like an explicit one
    elif spec == "auto":
        if announce:
            log.warning(
                "device=auto: no CUDA device (%s); serving on the CPU (slow; DCGAN_DEVICE=cpu silences this)",
                unavailable_reason(),
            )
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise StartupError(
            f"device {spec!r} was requested but CUDA is not available: {unavailable_reason()} "
            "(set DCGAN_DEVICE=cpu or auto)"
        )
    device = torch.device(spec)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise StartupError(
            f"device {spec!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)"
        )
    if (problem := capability_problem(device)) is not None:
        raise StartupError(f"device {spec!r}: {problem}")
    return device


def check_precision(device: torch.device, precision: str) -> None:
    """bf16 only where it is native (``models.precision`` owns the gate); ``StartupError`` naming the setting."""
    if precision == "fp32":
        return
    try:
        check_bf16(device, f"DCGAN_PRECISION={precision}")
    except ValueError as e:
        raise StartupError(str(e)) from None
    if device.type == "cuda" and not cuda_bf16_native(device):
        log.warning("DCGAN_PRECISION=%s on %s: emulated before sm 8.0, likely slower than fp32", precision, device)


def check_forward(device: torch.device, precision: str, runtime: str) -> None:
    """The precision and the runtime on ``device``: ``StartupError`` naming the setting if they cannot run."""
    check_precision(device, precision)
    try:
        check_runtime(runtime, device, precision)
    except OnnxUnavailable as e:
        raise StartupError(str(e)) from None


def _cores() -> int:
    """CPUs this process may use: its affinity mask, capped by a container's cgroup CPU quota."""
    return usable_cpus()


def forward_workers(setting: int | None, device: torch.device) -> int:
    """Generator forwards that may run at once: the setting if given; on a CPU device, 2 when there are
    at least 2 cores (two one-thread forwards side by side), else 1; on a GPU, 2: while one thread
    encodes its batch's PNGs on the CPU, the other keeps the GPU busy."""
    if setting is not None:
        return setting
    return min(2, _cores()) if device.type == "cpu" else 2


def torch_threads(setting: int | None, device: torch.device, workers: int = 1) -> int:
    """Intra-op threads for each forward: the setting if given; on a CPU device, the cores left after one
    for the event loop, shared among the ``workers`` (at least 1 each); on a GPU, 1 (the CPU side of a
    forward is a latent draw and a copy; torch would otherwise size its pool to every core of the node).

    Why not all cores: OpenMP workers spin while they wait, so a forward whose threads share their
    cores with the event loop and encoders runs several times slower than on fewer threads
    (docs/benchmarks/README.md). One-thread forwards in parallel workers do not spin.
    """
    if setting is not None:
        return setting
    if device.type == "cpu":
        return max(1, (_cores() - 1) // workers)
    return 1


def warmup_sizes(max_rows: int, fixed_shape: bool = False) -> list[int]:
    """Every row count a forward can compute when no piece exceeds ``max_rows``: each multiple of 8 up to
    it (``render`` pads to 8), or on CUDA the one fixed shape."""
    top = -(-max_rows // PAD_MULTIPLE) * PAD_MULTIPLE
    return [top] if fixed_shape else list(range(PAD_MULTIPLE, top + 1, PAD_MULTIPLE))


@dataclass
class Engine:
    """A generator in eval mode on its device, with what the service reports about it."""

    generator: Generator
    info: ExportInfo
    device: torch.device
    dtype: torch.dtype = torch.float32
    chunk_rows: int | None = None  # forward a large batch in pieces of this many rows (a multiple of 8)
    fixed_shape: bool = False  # CUDA: every piece, the last one too, is padded to exactly chunk_rows
    directions: dict[str, Direction] = field(default_factory=dict)  # by name: the export's, then sefa-0..
    onnx: OnnxForward | None = None  # DCGAN_RUNTIME=onnxruntime: G(z) in ONNX Runtime, not ``generator``

    @classmethod
    def preflight(cls, checkpoint: str, device_spec: str, precision: str = "fp32", runtime: str = "torch") -> None:
        """Validate the device, the precision and runtime on it and the whole export (on the CPU) without
        keeping anything; ``StartupError`` if not."""
        check_forward(resolve_device(device_spec, announce=False), precision, runtime)
        cls._load(checkpoint, torch.device("cpu"))

    @classmethod
    def load(cls, checkpoint: str, device_spec: str, precision: str = "fp32", runtime: str = "torch") -> Engine:
        """Load the export onto the device, to run in ``precision`` by ``runtime``; raises ``StartupError``
        with one clear line."""
        device = resolve_device(device_spec)
        check_forward(device, precision, runtime)
        if device.type == "cuda":
            exact_convolutions()  # the byte contract: deterministic cuDNN, IEEE fp32 (process-wide)
        return cls._load(checkpoint, device).in_precision(precision).in_runtime(runtime)

    @classmethod
    def _load(cls, checkpoint: str, device: torch.device) -> Engine:
        try:
            export = load_export(checkpoint, device)
        except ValueError as e:  # CheckpointError (missing, truncated, corrupt, wrong format) names the file
            raise StartupError(str(e)) from None
        except (OSError, RuntimeError) as e:
            raise StartupError(f"{checkpoint}: cannot load onto {device}: {e}") from None
        stored = list(export.directions)  # attribute directions the export carries (format 2)
        found = stored + label_sefa(sefa(export.generator), stored)  # SeFa: every generator, old exports too
        return cls(export.generator, export.info, device, directions={d.name: d for d in found})

    def in_precision(self, precision: str) -> Engine:
        """Forward in ``precision`` from now on. bf16 is another model as far as clients can tell (other
        pixels), so the model id says it (``-bf16``, on every PNG and response). Directions stay the fp32
        generator's: they are latent vectors, computed before the cast."""
        if precision != "fp32":
            self.generator = cast(self.generator, precision)
            self.info = replace(self.info, precision=precision)
            self.dtype = DTYPES[precision]
        return self

    def in_runtime(self, runtime: str) -> Engine:
        """Forward with ``runtime`` from now on (``check_runtime`` has passed). ONNX Runtime's pixels differ
        from PyTorch's by a level here and there, so it is another model too (``-ort``)."""
        if runtime != "torch":
            try:
                self.onnx = OnnxForward(self.generator)
            except Exception as e:  # the exporter or the session refused this generator
                raise StartupError(f"{self.info.path}: DCGAN_RUNTIME={runtime}: {type(e).__name__}: {e}") from None
            self.info = replace(self.info, runtime=runtime)
        return self

    def in_fastest_layout(self, max_batch_images: int) -> Engine:
        """fp32 PyTorch on the CPU: run the generator channels-last after its first layer where that gives the
        same floats as now at every row count a forward will compute (``models.layout`` probes it, about
        1 s at the default 64-row pieces); else, and in every other precision, runtime or device, as it is.
        Call it once ``chunk_rows`` and ``fixed_shape`` are set."""
        if self.onnx is not None or self.device.type != "cpu" or self.dtype != torch.float32:
            return self
        start = time.perf_counter()
        rows = warmup_sizes(min(max_batch_images, self.chunk_rows or max_batch_images), self.fixed_shape)
        self.generator = fastest_same_floats(self.generator, rows)
        log.info(
            "%s: layout %s (probed %d-%d rows in %.1f s)", self.info.model_id, self.layout, rows[0], rows[-1],
            time.perf_counter() - start,
        )  # fmt: skip
        return self

    @property
    def layout(self) -> str:
        """``channels_last_tail`` where ``in_fastest_layout`` kept that copy, else ``contiguous``; same pixels."""
        return "channels_last_tail" if isinstance(self.generator, ChannelsLastTail) else "contiguous"

    @property
    def nz(self) -> int:
        return self.info.config.nz

    @property
    def image_size(self) -> int:
        return self.info.config.image_size

    def warm_up(self, max_batch_images: int) -> float:
        """Run every shape a forward can have once (cuDNN plans, oneDNN primitives, allocator growth);
        returns the seconds spent."""
        start = time.perf_counter()
        for rows in warmup_sizes(min(max_batch_images, self.chunk_rows or max_batch_images), self.fixed_shape):
            self._render(torch.zeros(rows, self.nz))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (N, nz) float32 -> images (N, H, W, C) uint8 on the CPU.

        With ``chunk_rows`` set, a larger batch runs as pieces of that many rows: on a CPU the
        activations of a few dozen rows stay in cache and each image costs less than in one
        256-row call. The pixels do not change: ``render`` makes every row independent of the
        batch it is computed in (pieces are multiples of 8 rows, the last one is padded). With
        ``fixed_shape`` (CUDA) every piece is padded to ``chunk_rows``: one shape, one cuDNN algorithm.
        """
        rows = self.chunk_rows if self.fixed_shape else None
        if self.chunk_rows is None or (z.shape[0] <= self.chunk_rows and rows is None):
            return self._render(z)
        return torch.cat([self._render(part, rows) for part in z.split(self.chunk_rows)])

    def _render(self, z: torch.Tensor, rows: int | None = None) -> torch.Tensor:
        """``models.sampling.render`` by this engine's runtime: (N, nz) -> (N, H, W, C) uint8 on the CPU."""
        if self.onnx is not None:
            return self.onnx.render(z, rows)
        return render(self.generator, z, rows)
