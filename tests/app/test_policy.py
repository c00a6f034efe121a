"""The batch policy's rules, from numbers alone: no asyncio, no threads, no clock."""

from __future__ import annotations

import pytest

from app.batching.policy import DISCONNECT_CHECK_AFTER_S, BatchPolicy


def test_take_fills_up_to_max_rows_in_queue_order() -> None:
    policy = BatchPolicy(max_rows=8, max_wait_s=0.005)
    assert policy.take([3, 4, 2, 1]) == 2  # 3 + 4 fit, + 2 would be 9
    assert policy.take([8, 1]) == 1
    assert policy.take([1]) == 1


def test_take_stops_at_a_whole_multiple_of_the_padding() -> None:
    policy = BatchPolicy(max_rows=32, max_wait_s=0.005, row_multiple=8)
    assert policy.take([1] * 19) == 16  # 16 rows for 16 images, not 24 computed for 19
    assert policy.take([4, 4, 3]) == 2  # 8 of 11
    assert policy.take([3, 2]) == 2  # no whole multiple in reach: take what fits
    assert policy.take([1] * 40) == 32


def test_flush_delay_counts_from_the_oldest_row() -> None:
    policy = BatchPolicy(max_rows=64, max_wait_s=0.010)
    assert policy.flush_delay(now=100.0, oldest_enqueued=100.0, queued_rows=1) == pytest.approx(0.010)
    assert policy.flush_delay(now=100.004, oldest_enqueued=100.0, queued_rows=1) == pytest.approx(0.006)
    assert policy.flush_delay(now=100.5, oldest_enqueued=100.0, queued_rows=1) == 0.0  # waited already


def test_enough_rows_go_at_once() -> None:
    policy = BatchPolicy(max_rows=64, max_wait_s=10.0, enough_rows=8)
    assert policy.flush_delay(0.0, 0.0, queued_rows=7) == 10.0
    assert policy.flush_delay(0.0, 0.0, queued_rows=8) == 0.0
    assert BatchPolicy(max_rows=4, max_wait_s=1.0, enough_rows=100).enough_rows == 4  # never above a batch


def test_a_lone_client_stops_waiting_and_a_burst_brings_waiting_back() -> None:
    policy = BatchPolicy(max_rows=64, max_wait_s=0.2)
    assert policy.company_expected  # nothing seen yet: assume company
    for i in range(6):
        policy.arrived(i * 0.5)  # requests 0.5 s apart, further than max_wait
    assert not policy.company_expected and policy.flush_delay(3.0, 3.0, 1) == 0.0
    for i in range(20):
        policy.arrived(3.0 + i * 0.001)  # a burst
    assert policy.company_expected and policy.flush_delay(3.1, 3.1, 1) == pytest.approx(0.2)


def test_only_requests_that_waited_are_asked_about_their_client() -> None:
    assert not BatchPolicy.ask_if_gone(DISCONNECT_CHECK_AFTER_S / 2)
    assert BatchPolicy.ask_if_gone(DISCONNECT_CHECK_AFTER_S)


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid batch policy"):
        BatchPolicy(max_rows=0, max_wait_s=0.01)
