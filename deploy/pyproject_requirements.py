"""Write pip requirement files from pyproject.toml's [project].dependencies, for the Docker build.

    python pyproject_requirements.py pyproject.toml   # -> requirements.txt, torch.txt (in the cwd)

torch.txt holds the torch/torchvision pins alone, so the build can take them from TORCH_INDEX_URL
(another CUDA flavour, or CPU) before requirements.txt installs the rest from PyPI. The image's
install layer sees only these two files, so it is rebuilt when the dependency list changes, not when
the code or pyproject's tool settings do.
Standard library only (it runs before anything is installed).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

TORCH = ("torch", "torchvision")


def requirement_name(requirement: str) -> str:
    """``torch>=2.10`` -> ``torch`` (PEP 508: the name ends at a version, extra, marker or space)."""
    return re.split(r"[<>=!~;\[\s(@]", requirement, maxsplit=1)[0].lower()


def main(pyproject: str) -> int:
    deps: list[str] = tomllib.loads(Path(pyproject).read_text())["project"]["dependencies"]
    torch = [d for d in deps if requirement_name(d) in TORCH]
    if sorted(map(requirement_name, torch)) != sorted(TORCH):
        print(f"{pyproject}: dependencies must name torch and torchvision, got {deps}", file=sys.stderr)
        return 1
    Path("requirements.txt").write_text("\n".join(deps) + "\n")
    Path("torch.txt").write_text("\n".join(torch) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml"))
