"""The fresh-machine promise: `make` on a Python that cannot build a venv stops with a clear message and
leaves no half-made .venv behind (a later `make` would otherwise find a python and no pip)."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import require

from .conftest import REPO


def fake_python(tmp_path: Path, modules: dict[str, str]) -> Path:
    """A ``python3`` that is this interpreter with ``modules`` (name -> source) shadowing the standard ones."""
    shadow = tmp_path / "shadow"
    for name, source in modules.items():
        path = shadow / name.replace(".", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".py").write_text(source)
    shim = tmp_path / "bin" / "python3"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nPYTHONPATH={shadow} exec {sys.executable} "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    return shim


def make_venv(python: Path, venv: Path) -> subprocess.CompletedProcess[str]:
    require(shutil.which("make") is not None, "needs make")
    args = ["make", "--no-print-directory", "venv", f"PYTHON={python}", f"VENV={venv}"]
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_python_without_venv_stops_with_the_debian_hint(tmp_path: Path) -> None:
    python = fake_python(tmp_path, {"ensurepip": "raise ImportError('No module named ensurepip')"})
    result = make_venv(python, tmp_path / "venv")
    assert result.returncode != 0
    assert "cannot create virtual environments" in result.stderr and "apt-get install python3-venv" in result.stderr
    assert not (tmp_path / "venv").exists()


def test_a_failed_venv_build_leaves_nothing_behind(tmp_path: Path) -> None:
    half_made = "import os, sys\nos.makedirs(os.path.join(sys.argv[-1], 'bin'))\nsys.exit('venv: disk full')\n"
    python = fake_python(tmp_path, {"venv.__init__": "", "venv.__main__": half_made})
    result = make_venv(python, tmp_path / "venv")
    assert result.returncode != 0 and "nothing was left behind" in result.stderr, result.stderr
    assert not (tmp_path / "venv").exists()


@pytest.mark.parametrize("where", ["pyproject", "readme"])
def test_the_python_version_is_stated_once(where: str) -> None:
    """requires-python, ruff's target and the README say what the code needs (asyncio.timeout: 3.11)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["requires-python"] == ">=3.11"
    if where == "pyproject":
        assert project["tool"]["ruff"]["target-version"] == "py311"
        assert project["tool"]["mypy"]["python_version"] == "3.11"
    else:
        readme = (REPO / "README.md").read_text()
        assert "Python ≥ 3.11" in readme and "3.10" not in readme
