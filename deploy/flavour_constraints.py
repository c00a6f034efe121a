"""Write deploy/constraints-<flavour>.txt (cu128, cu126, cpu) from deploy/constraints.txt.

Each is constraints.txt less the CUDA libraries (cuda-*, nvidia-*): those pins are CUDA 13.0's, and
each torch wheel names its own (exact pins; cuda-bindings within a range). triton is CUDA-agnostic and
stays (a CPU build does not install it: a constraint never installs anything). The Dockerfile picks a
flavour's file from TORCH_INDEX_URL's last segment. Run after refreshing constraints.txt:

    python deploy/flavour_constraints.py
"""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
FLAVOURS = {
    "cu128": "CUDA 12.8 (TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128; driver >= 570)",
    "cu126": "CUDA 12.6 (TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126; driver >= 560)",
    "cpu": "no CUDA (TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu)",
}
CUDA_LIBRARIES = re.compile(r"(nvidia-|cuda-)")


def flavour_pins(default: str) -> list[str]:
    """The ``name==version`` lines of ``default`` (constraints.txt's text) that every flavour shares."""
    pins = [line for line in default.splitlines() if line.strip() and not line.startswith("#")]
    return [line for line in pins if not CUDA_LIBRARIES.match(line)]


def main() -> None:
    pins = flavour_pins((HERE / "constraints.txt").read_text())
    for flavour, build in FLAVOURS.items():
        header = [
            f"# deploy/constraints.txt for the torch build with {build},",
            "# less the CUDA libraries: written by deploy/flavour_constraints.py, which says why. Do not edit.",
        ]
        (HERE / f"constraints-{flavour}.txt").write_text("\n".join(header + pins) + "\n")


if __name__ == "__main__":
    main()
