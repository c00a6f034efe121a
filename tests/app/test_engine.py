"""Engine speed settings never change pixels: chunked CPU forwards give ``render``'s exact bytes; and the
thread policy leaves a core free on the CPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from app.compute.engine import Engine, forward_workers, torch_threads
from app.runtime import cpu_quota
from models import layout
from models.latent import latents_for_seeds
from models.sampling import render


@pytest.mark.parametrize("chunk_rows", [8, 16, 24])
def test_chunked_forward_gives_every_latent_its_own_pixels(checkpoint: Path, chunk_rows: int) -> None:
    """50 rows in pieces of ``chunk_rows`` (and a padded remainder): each image is bit-identical to the
    latent rendered alone, and the forward really ran in pieces."""
    engine = Engine.load(str(checkpoint), "cpu")
    z = latents_for_seeds(list(range(50)), engine.nz)  # (50, nz)
    alone = torch.cat([render(engine.generator, z[i : i + 1]) for i in range(50)])  # one latent per forward
    calls: list[int] = []
    hook = engine.generator.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    engine.chunk_rows = chunk_rows
    try:
        chunked = engine.forward(z)
    finally:
        hook.remove()
    assert torch.equal(chunked, alone)
    assert len(calls) == -(-50 // chunk_rows) and max(calls) == chunk_rows  # pieces, each padded to 8


def test_the_fastest_layout_keeps_every_latents_bytes(checkpoint: Path) -> None:
    """fp32 on the CPU picks its layout by probing every row count its 16-row pieces compute; the bytes at
    batch sizes 1, 7, 64 and 256 are the plain generator's, whichever it picked."""
    plain = Engine.load(str(checkpoint), "cpu")
    engine = Engine.load(str(checkpoint), "cpu")
    engine.chunk_rows = 16
    probed: list[list[int]] = []
    real = layout.same_floats

    def probe(a: torch.nn.Module, b: torch.nn.Module, rows: list[int]) -> bool:
        probed.append(list(rows))
        return real(a, b, rows)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(layout, "same_floats", probe)
        assert engine.in_fastest_layout(256) is engine
    assert probed == [[8, 16]]
    assert engine.layout in ("contiguous", "channels_last_tail")
    assert (engine.layout == "channels_last_tail") == isinstance(engine.generator, layout.ChannelsLastTail)
    z = latents_for_seeds(list(range(256)), engine.nz)  # (256, nz)
    alone = torch.cat([render(plain.generator, z[i : i + 1]) for i in range(256)])
    for n in (1, 7, 64, 256):
        assert torch.equal(torch.cat([engine.forward(part) for part in z.split(n)]), alone), n


def test_only_fp32_pytorch_on_the_cpu_changes_layout(checkpoint: Path) -> None:
    engine = Engine.load(str(checkpoint), "cpu")
    engine.dtype = torch.bfloat16  # as in_precision("bf16") leaves it
    generator = engine.generator
    assert engine.in_fastest_layout(64).generator is generator and engine.layout == "contiguous"


@pytest.fixture
def no_cgroup_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    """The core counts below are the affinity mask's: the machine running the tests may sit under a quota."""
    monkeypatch.setattr(cpu_quota, "cgroup_quota", lambda *args: None)


@pytest.mark.usefixtures("no_cgroup_quota")
def test_thread_policy_leaves_a_core_for_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    assert torch_threads(3, torch.device("cpu")) == 3  # an explicit setting wins
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert torch_threads(None, torch.device("cpu")) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert torch_threads(None, torch.device("cpu")) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert torch_threads(None, torch.device("cpu")) == 15
    assert torch_threads(None, torch.device("cuda")) == 1  # the GPU does the work


@pytest.mark.usefixtures("no_cgroup_quota")
def test_worker_policy_runs_one_thread_forwards_side_by_side_on_a_small_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert forward_workers(3, cpu) == 3 and forward_workers(None, cuda) == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert forward_workers(None, cpu) == 2 and torch_threads(None, cpu, workers=2) == 1  # 2 cores: 2 x 1 thread
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert forward_workers(None, cpu) == 1 and torch_threads(None, cpu, workers=1) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert forward_workers(None, cpu) == 2 and torch_threads(None, cpu, workers=2) == 7
