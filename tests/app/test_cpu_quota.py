"""The CPUs the app sizes its threads for: the affinity mask, capped by a cgroup v1 or v2 CPU quota."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.runtime import cpu_quota
from app.runtime.cpu_quota import cgroup_quota, usable_cpus


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def sixteen_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)


def test_v2_quota_caps_the_affinity_mask(tmp_path: Path, sixteen_cores: None) -> None:
    write(tmp_path / "proc", "0::/kubepods/pod1/ctr\n")
    write(tmp_path / "cg/kubepods/pod1/ctr/cpu.max", "max 100000\n")  # the container: no limit of its own
    write(tmp_path / "cg/kubepods/pod1/cpu.max", "250000 100000\n")  # the pod: limits: {cpu: 2.5}
    write(tmp_path / "cg/kubepods/cpu.max", "max 100000\n")
    assert cgroup_quota(tmp_path / "cg", tmp_path / "proc") == 2.5
    assert usable_cpus(tmp_path / "cg", tmp_path / "proc") == 2  # rounded down: no throttled half core


def test_v2_namespaced_root_and_small_quota(tmp_path: Path, sixteen_cores: None) -> None:
    write(tmp_path / "proc", "0::/\n")  # inside a cgroup namespace, the container is the root
    write(tmp_path / "cg/cpu.max", "50000 100000\n")  # limits: {cpu: 500m}
    assert usable_cpus(tmp_path / "cg", tmp_path / "proc") == 1  # never below one


def test_v1_quota(tmp_path: Path, sixteen_cores: None) -> None:
    write(tmp_path / "proc", "4:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n")
    write(tmp_path / "cg/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "300000\n")
    write(tmp_path / "cg/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n")
    assert cgroup_quota(tmp_path / "cg", tmp_path / "proc") == 3.0
    assert usable_cpus(tmp_path / "cg", tmp_path / "proc") == 3


def test_no_quota_means_the_affinity_mask(tmp_path: Path, sixteen_cores: None) -> None:
    write(tmp_path / "proc", "4:cpu,cpuacct:/\n0::/\n")
    write(tmp_path / "cg/cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
    write(tmp_path / "cg/cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    assert cgroup_quota(tmp_path / "cg", tmp_path / "proc") is None
    assert usable_cpus(tmp_path / "cg", tmp_path / "proc") == 16
    assert usable_cpus(tmp_path / "missing", tmp_path / "missing-proc") == 16  # not Linux, or no cgroup fs


def test_garbage_files_are_ignored(tmp_path: Path, sixteen_cores: None) -> None:
    write(tmp_path / "proc", "0::/x\n")
    write(tmp_path / "cg/x/cpu.max", "lots\n")
    assert usable_cpus(tmp_path / "cg", tmp_path / "proc") == 16


def test_this_machine_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    assert 1 <= usable_cpus() <= (os.cpu_count() or 1)
    monkeypatch.setattr(cpu_quota, "cgroup_quota", lambda *args: 1.0)
    assert usable_cpus() == 1
