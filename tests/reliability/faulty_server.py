"""``python -m tests.reliability.faulty_server [--delay S] [--fail-calls 1,3]``: ``python -m app`` with
a generator that is slowed down and/or fails on chosen forward calls. Test-only: the app itself has
no such switch; this wraps ``Engine.forward`` in the child process, then runs the real entry point.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time

import torch

from app import __main__ as entry
from app.compute.engine import Engine


class InjectedFault(RuntimeError):
    """Raised by the wrapped forward on the chosen calls."""


def wrap_forward(delay_s: float, fail_calls: set[int]) -> None:
    original = Engine.forward
    counter = itertools.count(1)

    def forward(self: Engine, z: torch.Tensor) -> torch.Tensor:
        call = next(counter)  # numbered in call order (the tests run one forward worker)
        time.sleep(delay_s)
        if call in fail_calls:
            raise InjectedFault(f"injected failure in forward call {call}")
        return original(self, z)

    Engine.forward = forward  # type: ignore[method-assign]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each forward sleeps first")
    parser.add_argument("--fail-calls", default="", help="comma-separated 1-based forward calls that raise")
    args = parser.parse_args()
    wrap_forward(args.delay, {int(c) for c in args.fail_calls.split(",") if c})
    return entry.main()


if __name__ == "__main__":
    sys.exit(main())
