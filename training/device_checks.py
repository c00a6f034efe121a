"""What a training option needs from the device, checked before any data is read.

Each refusal is a ``ValueError`` naming the option (the CLI prints it and exits 2); what works but
slowly (bf16 on a GPU older than Ampere, ``models.precision.cuda_bf16_native``) is a ``RuntimeWarning``.
"""

from __future__ import annotations

import os
import shutil
import warnings

import torch

from models.precision import check_bf16, cuda_bf16_native

# torch.compile builds kernels at the first step: Triton compiles a small C launcher on CUDA, Inductor
# C++ on the CPU. Each looks for $CC / $CXX first, then these names on PATH.
COMPILERS = {"cuda": ("CC", ("cc", "gcc", "clang")), "cpu": ("CXX", ("c++", "g++", "clang++"))}


def compiler(device: torch.device) -> str | None:
    """The compiler ``torch.compile`` would use on ``device``, or None when there is none."""
    variable, names = COMPILERS.get(device.type, COMPILERS["cpu"])
    chosen = os.environ.get(variable)
    candidates = ([chosen] if chosen else []) + list(names)
    return next((path for name in candidates if (path := shutil.which(name)) is not None), None)


def check_options(amp: bool, compile: bool, sync_bn: bool, device: torch.device) -> None:
    """Refuse --amp (emulated bf16), --compile (no compiler) and --sync-bn (no CUDA) where they cannot work."""
    if amp:
        check_bf16(device, "--amp")  # a CPU without AVX-512 BF16 / AMX: refused
        if device.type == "cuda" and not cuda_bf16_native(device):
            major, minor = torch.cuda.get_device_capability(device)
            warnings.warn(
                f"--amp: this GPU (sm {major}.{minor}) has no native bf16 (sm 8.0, Ampere, and later do): "
                "it is emulated, slower than fp32; drop --amp on this GPU",
                RuntimeWarning,
                stacklevel=2,
            )
    if compile and compiler(device) is None:
        variable, names = COMPILERS.get(device.type, COMPILERS["cpu"])
        raise ValueError(
            f"--compile: torch.compile builds its kernels with a {'C' if device.type == 'cuda' else 'C++'} "
            f"compiler at the first step, and there is none (${variable}, {', '.join(names)}): install "
            f"{'gcc' if device.type == 'cuda' else 'g++'} (the training image has it) or drop --compile"
        )
    if sync_bn and device.type != "cuda":
        raise ValueError("--sync-bn: SyncBatchNorm needs CUDA (torchrun with nccl); on the CPU drop it")
