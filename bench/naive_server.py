"""``python -m bench.naive_server``: ``python -m app`` without cross-request batching, the benchmark's baseline.

Every request is its own batch, taken as soon as it is queued (no waiting for company): one forward
per request, as a server without a batcher would run. Benchmark-only: the app has no such switch;
this replaces the batch policy in this process (``app.batching.policy.BatchPolicy``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from app import __main__ as entry
from app.batching.policy import BatchPolicy


class OnePerBatch(BatchPolicy):
    def flush_delay(self, now: float, oldest_enqueued: float, queued_rows: int) -> float:
        return 0.0

    def take(self, rows: Sequence[int]) -> int:
        return 1


def main() -> int:
    import app.service

    app.service.BatchPolicy = OnePerBatch  # type: ignore[misc]
    return entry.main()


if __name__ == "__main__":
    sys.exit(main())
