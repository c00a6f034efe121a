"""Static checks of docker-compose.yml, the CPU override, prometheus.yml and the Grafana provisioning."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import pytest

from app.__main__ import DRAIN_S, GRACEFUL_SHUTDOWN_S
from app.runtime.metrics import Metrics
from tests.conftest import require

from .conftest import REPO, load_yaml, seconds, with_defaults

BASE = load_yaml("docker-compose.yml")
CPU = load_yaml("docker-compose.cpu.yml")
GPU_RESERVATION = [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]


def _published(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port, variables at their defaults."""
    pairs = (with_defaults(p).rsplit(":", 2)[-2:] for p in service["ports"])
    return {int(container): int(host) for host, container in pairs}


def _assert_ready_healthcheck(service: dict[str, Any]) -> None:
    check = service["healthcheck"]
    assert check["test"][0] == "CMD" and "/readyz" in " ".join(check["test"]), check["test"]
    assert "curl" not in " ".join(check["test"]), "the service image has no curl"
    assert seconds(check["start_period"]) >= 30, "loading and warming the model needs a start period"


def test_default_stack_is_app_and_prometheus_with_grafana_behind_a_profile() -> None:
    services = BASE["services"]
    assert set(services) == {"app", "prometheus", "grafana"}
    assert {name for name, s in services.items() if not s.get("profiles")} == {"app", "prometheus"}
    assert services["grafana"]["profiles"] == ["grafana"]
    assert set(BASE["volumes"]) == {"prometheus-data", "grafana-data"}


def test_app_builds_the_dockerfile_and_reserves_one_nvidia_gpu() -> None:
    app = BASE["services"]["app"]
    assert app["build"]["context"] == "."
    assert app["deploy"]["resources"]["reservations"]["devices"] == GPU_RESERVATION
    assert app["environment"]["DCGAN_DEVICE"] == "cuda"
    assert with_defaults(app["environment"]["DCGAN_CHECKPOINT"]) == "/opt/dcgan/checkpoints/demo-faces-64.safetensors"
    assert [with_defaults(v) for v in app["volumes"]] == ["./checkpoints:/checkpoints:ro"]
    assert _published(app) == {8000: 8000}
    assert app["restart"] == "unless-stopped"
    _assert_ready_healthcheck(app)


def test_the_service_drains_and_shuts_down_before_compose_kills() -> None:
    stop_grace = seconds(BASE["services"]["app"]["stop_grace_period"])
    # SIGTERM: /readyz 503 and requests served for DRAIN_S, then uvicorn finishes in-flight ones for up to
    # GRACEFUL_SHUTDOWN_S; SIGKILL comes stop_grace_period after SIGTERM. Keep a margin for the lifespan stop.
    assert stop_grace >= DRAIN_S + GRACEFUL_SHUTDOWN_S + 5, "SIGKILL would cut requests that are still draining"


def test_prometheus_is_pinned_scrapes_from_the_repo_config_and_keeps_data_in_a_volume() -> None:
    prom = BASE["services"]["prometheus"]
    name, _, tag = prom["image"].partition(":")
    assert name == "prom/prometheus" and tag.startswith("v") and tag.count(".") == 2, prom["image"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prom["volumes"]
    assert "prometheus-data:/prometheus" in prom["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    assert _published(prom) == {9090: 9090}
    assert "/-/ready" in " ".join(prom["healthcheck"]["test"])


def test_prometheus_config_scrapes_app_metrics_every_5s() -> None:
    config = load_yaml("deploy/prometheus/prometheus.yml")
    (job,) = config["scrape_configs"]
    assert config["global"]["scrape_interval"] == "5s"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"] == [{"targets": ["app:8000"]}]


def test_promtool_accepts_the_prometheus_config() -> None:
    require(shutil.which("promtool") is not None, "needs promtool (Debian package prometheus; .ci/run installs it)")
    done = subprocess.run(
        ["promtool", "check", "config", str(REPO / "deploy/prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("files", [["docker-compose.yml"], ["docker-compose.yml", "docker-compose.cpu.yml"]])
def test_docker_compose_accepts_the_files(files: list[str]) -> None:
    """docker-compose itself parses, interpolates and validates the stack (no engine needed for ``config``)."""
    require(shutil.which("docker-compose") is not None, "needs docker-compose (Debian package; .ci/run installs it)")
    args = ["docker-compose", "--project-directory", str(REPO), *(f for name in files for f in ("-f", name))]
    done = subprocess.run([*args, "config", "-q"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    services = subprocess.run([*args, "config", "--services"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert {"app", "prometheus"} <= set(services.stdout.split()), services.stdout + services.stderr


def test_cpu_override_parks_the_gpu_service_and_runs_a_cpu_twin_named_app() -> None:
    services = CPU["services"]
    assert services["app"] == {"profiles": ["gpu-only"]}  # compose merges this into app: off by default
    twin, app = services["app-cpu"], BASE["services"]["app"]
    assert "deploy" not in twin, "the CPU twin must not reserve a GPU"
    assert twin["environment"] == {**app["environment"], "DCGAN_DEVICE": "cpu"}
    assert twin["networks"] == {"default": {"aliases": ["app"]}}, "Prometheus scrapes app:8000"
    same = ("build", "volumes", "ports", "healthcheck", "stop_grace_period", "restart")
    assert {k: twin[k] for k in same} == {k: app[k] for k in same}, "the twin drifted from app"


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(dcgan_[a-z_]+)\b", expr))


def _series_names(family: str, kind: str) -> list[str]:
    """The series a metric family exposes (labelled families have no samples until first used)."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(kind, [""])
    return [family + suffix for suffix in suffixes]


def test_grafana_dashboard_uses_only_metrics_the_service_exports() -> None:
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/dcgan-faces.json").read_text())
    exported = {name for family in Metrics().registry.collect() for name in _series_names(family.name, family.type)}
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = set().union(*map(_metric_names, exprs))
    assert used and used <= exported, f"unknown metrics: {sorted(used - exported)}"
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("images", "latency", "batch", "queue", "rejections"):
        assert topic in titles
    datasource = load_yaml("deploy/grafana/provisioning/datasources/prometheus.yml")["datasources"][0]
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {datasource["uid"]}
    assert datasource["url"] == "http://prometheus:9090"


def test_dockerignore_is_an_allow_list_without_venvs_runs_or_tests() -> None:
    lines = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines() if ln.strip()[:1] not in ("", "#")]
    assert lines[0] == "*", "start from nothing and allow what the image needs"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert {"pyproject.toml", "models", "app", "checkpoints/demo-faces-64.safetensors"} <= allowed
    assert not allowed & {".venv", "venv", "runs", "tests", "data", ".git"}
    # every file the Dockerfile copies from the context is let in (a missing one fails only at build time)
    dockerfile = (REPO / "Dockerfile").read_text().splitlines()
    copies = [ln.split()[1:-1] for ln in dockerfile if ln.startswith("COPY ") and "--from=" not in ln]
    for source in (src.rstrip("/") for sources in copies for src in sources):
        assert source in allowed or any(source.startswith(f"{a}/") for a in allowed), f"{source} is not in the context"


def test_smoke_script_is_valid_bash_and_drives_the_cpu_stack() -> None:
    script = REPO / "scripts" / "compose_smoke.sh"
    assert script.stat().st_mode & 0o111, "executable"
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
    text = script.read_text()
    assert "-f docker-compose.yml -f docker-compose.cpu.yml" in text
    assert "down -v" in text and "trap teardown EXIT" in text
