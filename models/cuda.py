"""CUDA, in one place: why it is missing, the flags the byte contract needs, and which errors kill a device.

- ``unavailable_reason()``: the driver's own words when CUDA fails to initialise (a too-old driver
  otherwise surfaces only as "CUDA is not available").
- ``exact_convolutions()``: the serving contract. cuDNN picks deterministic algorithms without
  autotuning and computes fp32 convolutions in IEEE fp32 (no TF32), so a latent's pixels are a
  function of (export, GPU model, precision, torch/cuDNN build) and of the forward's shape, which
  the caller fixes (``app.compute.engine``).
- ``fast_training()``: training's flags: the shapes are fixed, so cuDNN's autotuner pays off.
- ``is_device_lost(error)``: a CUDA error after which the context is unusable (illegal address,
  Xid, ECC, a GPU fallen off the bus); out-of-memory is not one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

CUDA_WHEEL_REQUIREMENTS = "the cu130 wheels need an NVIDIA driver >= 580 and a GPU of compute capability >= 7.5"
MIN_CAPABILITY = (7, 5)  # the oldest architecture torch 2.14's CUDA 13.0 wheels ship kernels for (Turing)
# Words of errors that poison the CUDA context: every later call fails the same way.
_LOST = (
    *("CUDA error", "CUDA driver error", "CUBLAS_STATUS_EXECUTION_FAILED", "CUDNN_STATUS_EXECUTION_FAILED"),
    *("CUDNN_STATUS_INTERNAL_ERROR", "illegal memory access", "unspecified launch failure", "ECC error"),
)


def unavailable_reason() -> str:
    """Why ``torch.cuda.is_available()`` is False, in one line: a CPU build, or the driver's message."""
    if torch.version.cuda is None:
        return "this torch build has no CUDA (a CPU wheel; install a CUDA build)"
    try:
        torch.cuda.init()
    except Exception as e:  # torch raises the driver's own message: none found, too old, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return f"CUDA {torch.version.cuda} failed to initialise: {first} ({CUDA_WHEEL_REQUIREMENTS})"
    if torch.cuda.device_count() == 0:
        return f"the driver sees no GPU ({CUDA_WHEEL_REQUIREMENTS})"
    return "CUDA is available"


def capability_problem(device: torch.device) -> str | None:
    """A message when ``device`` is older than the wheels' kernels support, else None."""
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < MIN_CAPABILITY:
        name = torch.cuda.get_device_name(device)
        return f"{device} ({name}) is sm {major}.{minor}; {CUDA_WHEEL_REQUIREMENTS}"
    return None


def exact_convolutions() -> None:
    """The serving byte contract's flags (process-wide): deterministic cuDNN algorithms, no autotuning
    (its choice can change between runs), IEEE fp32 convolutions and matmuls instead of TF32.

    Through ``allow_tf32``, not the newer ``fp32_precision``: with the new API set, torch raises wherever
    the old flag is read (``cudnn.flags()``, torch.compile's state checks); ``allow_tf32 = False`` sets
    the new one to IEEE ("none") as well."""
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


@contextlib.contextmanager
def exact_convolutions_within() -> Iterator[None]:
    """``exact_convolutions()`` for a block, then the previous flags back (training's sample grids)."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32)
    exact_convolutions()
    try:
        yield
    finally:
        cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = saved


def fast_training() -> None:
    """Training's flags: cuDNN autotunes each (fixed) shape once and keeps the fastest algorithm."""
    torch.backends.cudnn.benchmark = True


def is_device_lost(error: BaseException) -> bool:
    """Whether ``error`` leaves the CUDA device unusable. Out-of-memory does not: the next batch may fit."""
    if isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error):
        return False
    if isinstance(error, torch.AcceleratorError):
        return True
    return isinstance(error, RuntimeError) and any(word in str(error) for word in _LOST)
