"""Which precisions this machine runs fast: the one owner of the bf16 gate that training and serving share.

bf16 on the CPU is only a speed-up where the cores have bf16 dot products (AVX-512 BF16, or AMX tiles).
Elsewhere oneDNN emulates it, slower than fp32 and with no warning, so both sides refuse it instead.
On CUDA bf16 is native from sm 8.0 (Ampere); older GPUs emulate it too.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from models.dcgan import Generator

PRECISIONS = ("fp32", "bf16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo names: either gives native bf16 matmuls


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU feature flags of /proc/cpuinfo's first ``flags`` line (empty where there is none)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def cpu_bf16_support(cpuinfo: str | None = None) -> tuple[str, ...]:
    """The native bf16 features this CPU has, e.g. ("avx512_bf16",); () where bf16 would be emulated."""
    flags = cpu_flags(cpuinfo)  # no /proc/cpuinfo (macOS, some sandboxes): no flags, so refused
    return tuple(f for f in CPU_BF16_FLAGS if f in flags)


def check_bf16(device: torch.device, what: str, cpuinfo: str | None = None) -> None:
    """Raise ``ValueError`` naming ``what`` (the option) when bf16 on ``device`` would be emulated."""
    if device.type == "cpu":
        if not cpu_bf16_support(cpuinfo):
            raise ValueError(
                f"{what}: bf16 on the CPU needs AVX-512 BF16 or AMX (/proc/cpuinfo flags avx512_bf16 or "
                "amx_bf16), and this CPU has neither: bf16 would be emulated, slower than fp32"
            )
    elif device.type != "cuda":
        raise ValueError(f"{what}: bf16 is supported on the CPU and on CUDA, not on {device.type}")


def cuda_bf16_native(device: torch.device) -> bool:
    """Whether a CUDA device computes bf16 natively (sm >= 8.0); pre-Ampere GPUs emulate it."""
    return torch.cuda.get_device_capability(device)[0] >= 8


def cast(generator: Generator, precision: str) -> Generator:
    """An eval-mode generator for inference in ``precision``: fp32 gives it back as it is; bf16 gives a
    bfloat16 copy in channels-last layout (oneDNN's faster bf16 path: 1.1-1.4x the contiguous layout
    on an AVX-512 BF16 EPYC). Check the device with ``check_bf16`` first.

    Every row stays independent of its batch, as in fp32 (``models.sampling``): the serving tests
    hold the bf16 bytes to the same contract at batch sizes 1, 7, 64 and 256.
    """
    if precision not in DTYPES:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return generator
    return copy.deepcopy(generator).to(DTYPES[precision]).to(memory_format=torch.channels_last).eval()
