"""Engine speed settings never change pixels: chunked CPU forwards give ``render``'s exact bytes; and the
thread policy leaves a core free on the CPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from app.compute.engine import Engine, forward_workers, torch_threads
from app.runtime import cpu_quota
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
