"""A real Prometheus scrapes our real server and reads back the images-generated counter.

Debian's ``prometheus`` (installed by .ci/run) runs with a generated config (scrape every 1 s) against
``python -m app`` serving a tiny checkpoint, both on free ports of 127.0.0.1. Generation requests
then must show up in Prometheus's query API as exactly the number of images they produced.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from models import DCGANConfig
from tests.conftest import require, tiny_export
from tests.live_server import SMALL_BATCHES, free_port, start_server

from .conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _prometheus() -> None:
    require(shutil.which("prometheus") is not None, "needs prometheus (Debian package; .ci/run installs it)")


QUERY = "dcgan_images_generated_total"
IMAGE_COUNTS = (3, 5, 8)  # three requests, 16 images


def _wait_for(what: str, check: Callable[[], bool], timeout_s: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    pytest.fail(f"{what} not within {timeout_s:.0f} s\n{tail}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m app`` on a free port with a tiny random-weight checkpoint; yields its base URL."""
    tmp_path = tmp_path_factory.mktemp("server")
    checkpoint = tiny_export(tmp_path / "tiny.safetensors", DCGANConfig(image_size=32, ngf=8))
    app = start_server(checkpoint, tmp_path / "app.log", **SMALL_BATCHES, torch_threads="1")
    try:
        app.wait_ready(timeout=120)
        yield app.base
    finally:
        app.stop(timeout=15)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, server: str) -> Iterator[str]:
    """Debian's prometheus scraping ``server`` every second; yields its base URL."""
    tmp_path = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: dcgan-faces\n"
        f"    static_configs:\n      - targets: ['{server.removeprefix('http://')}']\n"
    )
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=out,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for("Prometheus /-/ready", lambda: httpx.get(f"{url}/-/ready").status_code == 200, 60, log)
        yield url
    finally:
        _stop(process)


def _counter(prometheus: str) -> list[dict[str, Any]]:
    """The instant-query result for the counter (one series per scraped target)."""
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": QUERY}).json()
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def _total(prometheus: str) -> float | None:
    series = _counter(prometheus)
    return sum(float(s["value"][1]) for s in series) if series else None


def test_prometheus_reads_back_the_images_the_requests_generated(server: str, prometheus: str) -> None:
    _wait_for("Prometheus's first scrape of the server", lambda: _total(prometheus) == 0.0, 60)

    for n in IMAGE_COUNTS:
        response = httpx.post(f"{server}/generate", params={"n": n}, timeout=60)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"
        assert response.content.startswith(b"\x89PNG\r\n\x1a\n")

    expected = float(sum(IMAGE_COUNTS))
    _wait_for(f"Prometheus reporting {QUERY} == {expected:g}", lambda: _total(prometheus) == expected, 60)
    (series,) = _counter(prometheus)
    assert series["metric"]["job"] == "dcgan-faces"
    assert series["metric"]["instance"] == server.removeprefix("http://")
    time.sleep(2)  # two more scrapes: the value stays put (nothing else generates)
    assert _total(prometheus) == expected


def test_every_grafana_dashboard_query_returns_data(server: str, prometheus: str) -> None:
    """The provisioned dashboard's PromQL runs against the series our server exports and, with traffic in
    the window, every panel query returns at least one series with a finite value."""
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/dcgan-faces.json").read_text())
    _wait_for("Prometheus's first scrape of the server", lambda: _total(prometheus) is not None, 60)
    before = _total(prometheus) or 0.0
    for seed in range(12):  # traffic spread over a few scrapes, so every rate() has two samples in its window
        assert httpx.post(f"{server}/generate", params={"n": 2, "seed": seed}, timeout=60).status_code == 200
        time.sleep(0.25)
    _wait_for("Prometheus seeing the traffic", lambda: (_total(prometheus) or 0.0) >= before + 24, 60)
    time.sleep(1.5)  # one more scrape after the last request
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "1m")
            answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}).json()
            assert answer["status"] == "success", f"{panel['title']}: {expr}: {answer}"
            values = [float(series["value"][1]) for series in answer["data"]["result"]]
            assert values and all(math.isfinite(v) for v in values), f"{panel['title']}: {expr}: no data {answer}"
