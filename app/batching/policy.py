"""When a batch goes and what it takes: the batcher's tuning rules, as one pure synchronous object.

The batcher (``app.batching.batcher``) asks three questions and this object answers them from numbers alone
(times in ``time.perf_counter`` seconds), so every rule is unit-tested without asyncio:

- ``flush_delay``: how much longer to wait for company before the next batch goes;
- ``take``: how many of the queued requests (their latent-row counts, in queue order) it takes;
- ``ask_if_gone``: whether a request has waited long enough that its client may have left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

ARRIVAL_SMOOTHING = 0.2  # weight of the newest gap in the moving average of gaps between requests
DISCONNECT_CHECK_AFTER_S = 0.05  # asking costs an event-loop turn; a client gone sooner costs one share of a forward


@dataclass
class BatchPolicy:
    """Rules for one batcher. ``row_multiple`` and ``enough_rows`` are CPU rules: the forward pads to a
    multiple of 8 rows, and a CPU forward costs the same per image from 8 rows up."""

    max_rows: int  # latent rows per forward
    max_wait_s: float  # longest the oldest row waits for company
    row_multiple: int = 1  # when more rows wait than fit, a batch stops at a multiple of this
    enough_rows: int | None = None  # a batch goes at once when this many rows wait (None: max_rows)
    arrival_gap_s: float = 0.0  # moving average of the gaps between submits (0: assume company comes)
    last_arrival: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.max_rows < 1 or self.row_multiple < 1 or self.max_wait_s < 0:
            raise ValueError(f"invalid batch policy {self}")
        self.enough_rows = self.max_rows if self.enough_rows is None else min(self.enough_rows, self.max_rows)

    def arrived(self, now: float) -> None:
        """A request was submitted at ``now``: update the arrival-gap average."""
        if self.last_arrival is not None:
            self.arrival_gap_s += ARRIVAL_SMOOTHING * (now - self.last_arrival - self.arrival_gap_s)
        self.last_arrival = now

    @property
    def company_expected(self) -> bool:
        """Requests have been arriving closer together than ``max_wait_s``: another is likely soon. A lone
        client does not wait for company that will not come."""
        return self.arrival_gap_s < self.max_wait_s

    def flush_delay(self, now: float, oldest_enqueued: float, queued_rows: int) -> float:
        """Seconds to keep collecting: 0 once ``enough_rows`` wait, or once the oldest row has waited
        ``max_wait_s``. Rows that queued during the previous forward have waited already and go at once."""
        assert self.enough_rows is not None  # set in __post_init__
        if queued_rows >= self.enough_rows or not self.company_expected:
            return 0.0
        return max(0.0, oldest_enqueued + self.max_wait_s - now)

    def take(self, rows: Sequence[int]) -> int:
        """How many head requests (``rows``: each one's latent rows, in queue order) the next batch takes:
        as many as fit in ``max_rows``, then trimmed to a whole ``row_multiple`` if one exists. With 19
        one-row requests waiting, a CPU batch takes 16 (16 rows computed for 16 images, not 24 for 19); the
        other 3 lead the next batch, which a second worker may already be free to run."""
        count, total = 0, 0
        while count < len(rows) and total + rows[count] <= self.max_rows:
            total += rows[count]
            count += 1
        keep = count
        while keep > 0 and total % self.row_multiple:
            keep -= 1
            total -= rows[keep]
        return keep or count  # no whole multiple: take what fits

    @staticmethod
    def ask_if_gone(waited_s: float) -> bool:
        """Whether a queued request has waited long enough to be asked if its client left."""
        return waited_s >= DISCONNECT_CHECK_AFTER_S
