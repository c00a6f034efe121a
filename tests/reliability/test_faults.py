"""Faults against a real server on 127.0.0.1: a failing generator batch, clients that leave while
queued, and SIGTERM under steady load. The generator is slowed/failed by ``faulty_server`` (a
test-only wrapper around ``python -m app``)."""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.live_server import Server
from tests.reliability.conftest import server_errors, start_server


def faulty(checkpoint: Path, tmp_path: Path, *args: str, **settings: str) -> Iterator[Server]:
    runner = [sys.executable, "-m", "tests.reliability.faulty_server", *args]
    # one forward at a time: these tests queue requests behind a slow (or failing) forward
    one = {"torch_threads": "1", "forward_workers": "1"} | settings
    s = start_server(checkpoint, tmp_path / "server.log", runner=runner, **one)
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()


@pytest.fixture
def failing_first(checkpoint: Path, tmp_path: Path) -> Iterator[Server]:
    yield from faulty(checkpoint, tmp_path, "--delay", "0.5", "--fail-calls", "1")


@pytest.fixture
def slow(checkpoint: Path, tmp_path: Path) -> Iterator[Server]:
    yield from faulty(checkpoint, tmp_path, "--delay", "1.0")


def wait_until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.02)


def test_a_failing_batch_fails_only_its_requests(failing_first: Server) -> None:
    base = failing_first.base
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(httpx.post, f"{base}/generate", params={"n": 1, "seed": 1}, timeout=10)
        wait_until(lambda: failing_first.metric("dcgan_queue_depth_images") == 0 and not first.done(), 5)
        time.sleep(0.1)  # the first forward (0.5 s, then it raises) is running
        later = [pool.submit(httpx.post, f"{base}/generate", params={"n": 2, "seed": s}, timeout=10) for s in (2, 3)]
        failed = first.result()
        assert failed.status_code == 500
        assert "generator failed for this batch" in failed.json()["detail"]
        assert [r.result().status_code for r in later] == [200, 200]  # the next batch: both requests
    assert failing_first.metric("dcgan_batch_images_count") == 1  # one successful forward (B and C together)
    assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
    assert httpx.post(f"{base}/generate", params={"n": 1}, timeout=10).status_code == 200


def test_clients_that_leave_while_queued_are_never_computed(slow: Server) -> None:
    base, leavers, rows = slow.base, 5, 3
    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(httpx.post, f"{base}/generate", params={"n": 1, "seed": 1}, timeout=15)
        wait_until(
            lambda: slow.metric("dcgan_images_generated_total") == 0 and slow.metric("dcgan_queue_depth_images") == 0
        )
        time.sleep(0.2)  # the busy request's forward (1 s) is running
        socks = []
        for i in range(leavers):  # queued behind it, then gone
            sock = socket.create_connection(("127.0.0.1", slow.port), timeout=5)
            sock.sendall(
                f"POST /generate?n={rows}&seed={10 + i} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode()
            )
            socks.append(sock)
        wait_until(lambda: slow.metric("dcgan_queue_depth_images") == leavers * rows)
        for sock in socks:
            sock.close()
        assert busy.result().status_code == 200
    wait_until(lambda: slow.metric("dcgan_rejections_total", reason="disconnected") == leavers)
    assert slow.metric("dcgan_images_generated_total") == 1  # only the busy request's image was ever rendered
    assert slow.metric("dcgan_queue_depth_images") == 0
    r = httpx.post(f"{base}/generate", params={"n": 2}, timeout=10)
    assert r.status_code == 200 and slow.metric("dcgan_images_generated_total") == 3


@pytest.fixture
def slowish(checkpoint: Path, tmp_path: Path) -> Iterator[Server]:
    yield from faulty(checkpoint, tmp_path, "--delay", "0.1")


@pytest.mark.slow
def test_sigterm_drains_under_load(slowish: Server) -> None:
    """SIGTERM: /readyz turns 503 at once, every request in flight completes 200, exit within 10 s."""
    server = slowish
    stop = threading.Event()
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    done_after_signal = [0]
    signalled: list[float] = []

    def client() -> None:
        with httpx.Client(base_url=server.base, timeout=15) as http:
            while not stop.is_set():
                try:
                    r = http.post("/generate", params={"n": 2})
                    statuses[r.status_code] += 1
                    if signalled:
                        done_after_signal[0] += 1
                except httpx.HTTPError as e:
                    errors.append(repr(e))

    with ThreadPoolExecutor(4) as pool:
        clients = [pool.submit(client) for _ in range(4)]
        try:
            wait_until(lambda: sum(statuses.values()) >= 8 or len(errors) > 0)
            assert not errors, errors[:3]
        except BaseException:
            stop.set()
            raise
        before = server_errors(server)
        server.proc.send_signal(signal.SIGTERM)
        signalled.append(time.monotonic())
        readyz = [httpx.get(f"{server.base}/readyz", timeout=5).status_code]
        turned = time.monotonic() - signalled[0]
        stop.set()  # like a load balancer: no new requests once /readyz says 503
        for c in clients:
            c.result()
        assert server_errors(server) == before
    server.proc.wait(15)
    exit_s = time.monotonic() - signalled[0]
    log = server.log.read_text()
    assert readyz == [503] and turned < 1.0
    assert not errors, errors[:3]
    assert set(statuses) == {200} and done_after_signal[0] >= 1, (statuses, done_after_signal)
    assert server.proc.returncode in (0, -signal.SIGTERM) and exit_s < 10, (server.proc.returncode, exit_s)
    assert "Application shutdown complete" in log
    completed = done_after_signal[0]
    print(f"\nSIGTERM: readyz 503 after {turned:.3f} s, {completed} requests done after it, exit after {exit_s:.2f} s")


@pytest.fixture
def slow_half(checkpoint: Path, tmp_path: Path) -> Iterator[Server]:
    yield from faulty(checkpoint, tmp_path, "--delay", "0.5")


@pytest.mark.slow
def test_requests_in_flight_at_shutdown_complete(slow_half: Server) -> None:
    """Two SIGTERMs (no drain): uvicorn stops accepting at once, yet every request it had accepted
    (sent >= 100 ms before the signal) completes with 200 while its forward (0.5 s) is still running."""
    server = slow_half
    stop = threading.Event()
    outcomes: list[tuple[float, float, str]] = []  # (sent, finished, status or error)

    def client() -> None:
        with httpx.Client(base_url=server.base, timeout=15, headers={"Connection": "close"}) as http:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    outcome = str(http.post("/generate", params={"n": 1}).status_code)
                except httpx.HTTPError as e:
                    outcome = type(e).__name__
                outcomes.append((sent, time.monotonic(), outcome))
                if outcome != "200":
                    return  # the server is going away: stop, as a client would

    with ThreadPoolExecutor(4) as pool:
        clients = [pool.submit(client) for _ in range(4)]
        try:
            wait_until(lambda: len(outcomes) >= 4)
            time.sleep(0.3)  # each client has a request in its 0.5 s forward
        finally:
            signalled = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            time.sleep(0.05)
            server.proc.send_signal(signal.SIGTERM)  # the second signal skips the drain
            stop.set()
        for c in clients:
            c.result()
    server.proc.wait(15)
    exit_s = time.monotonic() - signalled
    accepted = [(sent, done, o) for sent, done, o in outcomes if sent < signalled - 0.1]
    assert all(o == "200" for _, _, o in accepted), accepted
    in_flight = [o for sent, done, o in accepted if done > signalled]
    assert len(in_flight) >= 1, outcomes
    assert exit_s < 10
    print(f"\nshutdown: {len(in_flight)} requests in flight at SIGTERM all completed 200; exit after {exit_s:.2f} s")
