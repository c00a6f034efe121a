"""How many CPUs this process may use: its affinity mask, and the cgroup CPU quota a container runs under.

``os.sched_getaffinity`` sees the cores a container may be scheduled on, not how much of them it may
use: a Kubernetes pod with ``limits: {cpu: 2}`` on a 64-core node sees 64. Sizing torch threads from
that oversubscribes the quota, and the kernel throttles the whole process (the event loop included)
for the rest of every 100 ms period. The quota is read from cgroup v2 (``cpu.max`` of the process's
cgroup and each parent) or v1 (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), rounded down, at least 1.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def usable_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int:
    """min(affinity mask, cgroup quota); the affinity mask alone where no quota is set or readable."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_quota(root, proc_cgroup)
    return affinity if quota is None else max(1, min(affinity, math.floor(quota)))


def cgroup_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """The tightest CPU quota (in CPUs) over this process's cgroup and its parents; None if unlimited."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: "0::/path"
            quotas += [q for d in _self_and_parents(root, path) if (q := _v2(d / "cpu.max")) is not None]
        elif "cpu" in controllers.split(","):  # cgroup v1: "4:cpu,cpuacct:/path"
            mount = root / controllers if (root / controllers).is_dir() else root / "cpu"
            quotas += [q for d in _self_and_parents(mount, path) if (q := _v1(d)) is not None]
    return min(quotas, default=None)


def _self_and_parents(mount: Path, path: str) -> list[Path]:
    parts = [p for p in path.split("/") if p]
    return [mount.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


def _v2(cpu_max: Path) -> float | None:
    try:
        quota, period = cpu_max.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period
