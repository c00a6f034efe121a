from __future__ import annotations

import pytest
import torch

from models import precision

EPYC = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\nbogomips\t: 1\n"
SAPPHIRE = "flags\t\t: avx512f avx512_bf16 amx_bf16 amx_tile\n"
OLD = "flags\t\t: fpu sse avx2\n"


def test_cpu_flags_reads_the_first_flags_line() -> None:
    assert precision.cpu_flags(EPYC) == {"fpu", "sse", "avx2", "avx512f", "avx512_bf16"}
    assert precision.cpu_flags("model name: x\n") == frozenset()


@pytest.mark.parametrize(
    ("cpuinfo", "found"), [(EPYC, ("avx512_bf16",)), (SAPPHIRE, ("avx512_bf16", "amx_bf16")), (OLD, ())]
)
def test_cpu_bf16_support(cpuinfo: str, found: tuple[str, ...]) -> None:
    assert precision.cpu_bf16_support(cpuinfo) == found


def test_check_bf16_refuses_emulated_bf16_naming_the_option() -> None:
    precision.check_bf16(torch.device("cpu"), "--amp", EPYC)  # native: accepted
    with pytest.raises(ValueError, match=r"^DCGAN_PRECISION: bf16 on the CPU needs AVX-512 BF16 or AMX"):
        precision.check_bf16(torch.device("cpu"), "DCGAN_PRECISION", OLD)
    with pytest.raises(ValueError, match="not on mps"):
        precision.check_bf16(torch.device("mps"), "--amp", EPYC)
