"""The CI version of ``scripts/overload.py``: 5 s at 10x the measured capacity against a real server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_overload_is_shed_bounded_and_recovers(tmp_path: Path) -> None:
    out = tmp_path / "overload.json"
    proc = subprocess.run(
        [sys.executable, "scripts/overload.py", "--duration", "5", "--measure", "2", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    print(proc.stdout)
    assert out.is_file(), proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    figures, checks = report["figures"], report["checks"]
    # invariants hold however busy the machine is
    for name in ("only 200/503/504", "some admitted and some shed", "every 503 has Retry-After", "no transport errors",
                 "queue within its bound", "RSS growth < 100 MB"):  # fmt: skip
        assert checks[name], f"{name}\n{proc.stdout}"
    assert figures["offered_factor"] >= 5, proc.stdout  # the niced client may not reach 10x on a busy box
    # timings: the script's own bounds (80 % within 2 s, p99 <= deadline + 1 s) with slack for a shared CI box
    assert figures["recovered_fraction"] >= 0.5 and figures["admitted_p99_s"] <= 2 * 2.0 + 1, proc.stdout
