"""app.runtime.malloc_tuning: a forward's freed activations are reused, not faulted in again; elsewhere nothing."""

from __future__ import annotations

import ctypes
import platform
import resource

import pytest
import torch

from app.runtime import malloc_tuning

GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt's thresholds are glibc's")
def test_freed_activations_are_reused_without_page_faults() -> None:
    """Six 8 MB activations allocated, written and freed, as a 64-row forward does: once the heap has grown,
    hardly a fresh page is touched (default glibc: ~16,000 page faults in these 10 rounds, in a fresh process)."""
    assert malloc_tuning.keep_freed_memory()

    def forward_like() -> None:
        activations = [torch.empty(2 * 1024 * 1024).fill_(1.0) for _ in range(6)]  # 6 x 8 MB, written
        del activations

    for _ in range(3):  # the heap grows to fit them beside what the test process already holds
        forward_like()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        forward_like()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults <= 4096, faults  # at most two 8 MB blocks placed anew


def test_other_c_libraries_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    monkeypatch.setattr(ctypes, "CDLL", lambda name: pytest.fail("mallopt called outside glibc"))
    assert malloc_tuning.keep_freed_memory() is False


def test_a_refused_threshold_is_said(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    class Refusing:
        @staticmethod
        def mallopt(param: int, value: int) -> int:
            return 0

    monkeypatch.setattr(platform, "libc_ver", lambda: ("glibc", "2.36"))
    monkeypatch.setattr(ctypes, "CDLL", lambda name: Refusing())
    assert malloc_tuning.keep_freed_memory() is False
    assert "mallopt refused" in caplog.text
