"""``python -m bench.sleepy_server --ms-per-row 0.8``: ``python -m app`` with the generator's forward
replaced by a sleep of that many milliseconds per padded row, returning black images.

A sleep holds no CPU and no GIL, so the server's throughput then measures everything *but* the
forward: HTTP, validation, batching, encoding, and how they pipeline (``bench/ceiling.py``).
Benchmark-only: the app has no such switch; this patches ``Engine.forward`` in this process.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from app import __main__ as entry
from app.compute.engine import Engine
from models.sampling import padded_rows


def sleep_forward(ms_per_row: float) -> None:
    def forward(self: Engine, z: torch.Tensor) -> torch.Tensor:
        n, size, channels = z.shape[0], self.image_size, self.info.config.channels
        time.sleep(padded_rows(n) * ms_per_row / 1000)  # (N', nz) rows, as render pads them
        return torch.zeros(n, size, size, channels, dtype=torch.uint8)  # (N, H, W, C)

    Engine.forward = forward  # type: ignore[method-assign]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ms-per-row", type=float, required=True, help="sleep per padded latent row")
    sleep_forward(parser.parse_args().ms_per_row)
    sys.argv = sys.argv[:1]
    return entry.main()


if __name__ == "__main__":
    sys.exit(main())
