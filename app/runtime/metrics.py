"""Prometheus metrics, one ``CollectorRegistry`` per app (so tests can build many apps in one process).

Names follow the Prometheus conventions: base units, ``_seconds``, ``_total``. The HTTP middleware
labels by route *template* (``/generate``, never ``/generate?n=3``) so label cardinality stays bounded.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models import ExportInfo

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REJECTION_REASONS = ("queue_full", "deadline", "disconnected", "invalid", "out_of_memory")
SWAP_OUTCOMES = ("ok", "refused")
MODEL = "dcgan_model"  # request.state key: the registry name a generation request resolved (the `model` label)
_INVERSION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
_STEP_BUCKETS = (0, 10, 25, 50, 100, 200, 300, 500, 1000, 2000, 5000, 10000)
INVERSION_MODES = ("fast", "faithful")
# ok; the upload or its options were refused (413/415/400/422); no face found (422); queue full (503);
# deadline (504); no encoder or turned off (503); the inversion itself failed (500)
INVERSION_OUTCOMES = ("ok", "bad_request", "bad_upload", "no_face", "queue_full", "deadline", "unavailable", "failed")


class QueueDepth:
    """``dcgan_queue_depth_images`` plus its high-water mark ``dcgan_queue_depth_max_images`` (since start),
    so a scrape every few seconds still proves the queue never went past its bound between scrapes.

    ``set`` is called on every submit and every batch: it stores a plain int that the gauge reads when
    scraped (no lock per call), and touches the peak gauge only when a new peak is reached."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows = 0
        self.current = Gauge("dcgan_queue_depth_images", "Latent rows waiting in the batcher queue", registry=registry)
        self.current.set_function(lambda: self.rows)
        self.peak = Gauge(
            "dcgan_queue_depth_max_images", "Most latent rows ever waiting in the batcher queue", registry=registry
        )
        self._peak = 0

    def set(self, rows: int) -> None:
        self.rows = rows
        if rows > self._peak:
            self._peak = rows
            self.peak.set(rows)


class Metrics:
    """Every metric the service exports, registered in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry  # the groups register in this order, the order a scrape lists them in
        self._add_generation(r)
        self._add_models(r)
        self._add_http(r)
        self._add_health(r)
        self._add_inversion(r)

    def _add_generation(self, r: CollectorRegistry) -> None:
        """Images rendered, the batcher's queue and batches, generator forwards, refused requests."""
        # `model`: a registry name (bounded by DCGAN_MAX_LOADED_MODELS and the manifest), "" outside a model
        self.images_generated = Counter(
            "dcgan_images_generated_total", "Images rendered by the generator", ["model"], registry=r
        )
        self.batch_images = Histogram(
            "dcgan_batch_images", "Latent rows per generator forward", buckets=_BATCH_BUCKETS, registry=r
        )
        self.batch_requests = Histogram(
            "dcgan_batch_requests",
            "Requests (chunks) served by one generator forward",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "dcgan_queue_wait_seconds",
            "Time a request's rows waited before their forward",
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.forward_seconds = Histogram(
            "dcgan_generator_forward_seconds", "Wall time of one generator forward", buckets=_FAST_BUCKETS, registry=r
        )
        self.queue_depth = QueueDepth(r)
        self.rejections = Counter("dcgan_rejections", "Requests refused, by reason", ["reason"], registry=r)
        # every reason's series exists from the start (zeros), so dashboards see them before the first refusal
        self._rejected = {reason: self.rejections.labels(reason) for reason in REJECTION_REASONS}

    def _add_models(self, r: CollectorRegistry) -> None:
        """The loaded generators, model swaps, and the in-process face cache."""
        self.model_info = Gauge(
            "dcgan_model_info",
            "A loaded generator, by registry name (value is always 1)",
            ["model", "model_id", "sha256", "image_size", "nz", "device", "dtype", "default"],
            registry=r,
        )
        self.swaps = Counter(
            "dcgan_model_swaps", "Model loads, replacements and unloads, by outcome", ["outcome"], registry=r
        )
        self._swaps = {outcome: self.swaps.labels(outcome) for outcome in SWAP_OUTCOMES}
        self.face_cache = Counter(
            "dcgan_face_cache_requests",
            "Cacheable-URL faces looked up in the in-process cache",
            ["outcome"],
            registry=r,
        )
        self.face_cache_hits, self.face_cache_misses = self.face_cache.labels("hit"), self.face_cache.labels("miss")
        self.face_cache_bytes = Gauge("dcgan_face_cache_bytes", "Bytes of encoded faces in the cache", registry=r)

    def _add_http(self, r: CollectorRegistry) -> None:
        """Every HTTP response, counted and timed (by HttpMetricsMiddleware)."""
        self.http_requests = Counter(
            "dcgan_http_requests",
            'HTTP requests by route template, method, status and model (registry name; "" for none)',
            ["route", "method", "status", "model"],
            registry=r,
        )
        self.http_duration = Histogram(
            "dcgan_http_request_duration_seconds",
            "HTTP request latency by route template and model",
            ["route", "method", "model"],
            buckets=_FAST_BUCKETS,
            registry=r,
        )

    def _add_health(self, r: CollectorRegistry) -> None:
        """What the orchestrator watches: a lost device, and the requests in flight (the autoscaling signal)."""
        self.device_lost = Gauge(
            "dcgan_device_lost", "1 once a CUDA error left the device unusable (the pod is being replaced)", registry=r
        )
        self.in_flight = 0  # HTTP requests being handled now; only the event loop changes it
        Gauge(
            "dcgan_http_requests_in_flight", "HTTP requests being handled now (the autoscaling signal)", registry=r
        ).set_function(lambda: self.in_flight)

    def _add_inversion(self, r: CollectorRegistry) -> None:
        """POST /invert: requests by mode and outcome, their duration and steps, the inversion queue."""
        self.inversions = Counter(
            "dcgan_inversions", "POST /invert requests by mode and outcome", ["mode", "outcome"], registry=r
        )
        self.inversion_seconds = Histogram(
            "dcgan_inversion_duration_seconds",
            "Wall time of one inversion in its thread (decode, align, invert, encode), by mode",
            ["mode"],
            buckets=_INVERSION_BUCKETS,
            registry=r,
        )
        self.inversion_steps = Histogram(
            "dcgan_inversion_steps",
            "Optimiser steps of one inversion (0 for mode=fast)",
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        self.inversions_waiting = 0  # admitted /invert requests not yet running (the bounded queue)
        self.inversions_running = 0
        Gauge(
            "dcgan_inversion_queue_depth", "Admitted /invert requests waiting for an inversion thread", registry=r
        ).set_function(lambda: self.inversions_waiting)
        Gauge("dcgan_inversions_running", "Inversions running now", registry=r).set_function(
            lambda: self.inversions_running
        )
        for mode in INVERSION_MODES:  # every series from the start, so dashboards see zeros
            for outcome in INVERSION_OUTCOMES:
                self.inversions.labels(mode, outcome)

    def describe_model(self, name: str, info: ExportInfo, device: object, dtype: object, default: str) -> None:
        """``dcgan_model_info``: a loaded export, its size, device and dtype, as labels of a constant 1."""
        self.forget_model(name, None)
        config = info.config
        dtype_name = str(dtype).removeprefix("torch.")
        labels = (info.model_id, info.sha256, str(config.image_size), str(config.nz), str(device), dtype_name)
        self.model_info.labels(name, *labels, str(name == default).lower()).set(1)
        self.images_generated.labels(name)  # its series exists (at 0) from the load, before any request

    def forget_model(self, name: str, info: ExportInfo | None) -> None:
        """Drop ``name``'s info series (all of them when ``info`` is None): it was unloaded or replaced."""
        for metric in self.model_info.collect():
            for sample in metric.samples:
                if sample.labels["model"] == name and (info is None or sample.labels["model_id"] == info.model_id):
                    self.model_info.remove(*(sample.labels[k] for k in self.model_info._labelnames))

    def swapped(self, outcome: str) -> None:
        """Count a load, replacement or unload (``ok``), or a refused candidate (``refused``)."""
        self._swaps[outcome].inc()

    def rejected(self, reason: str) -> None:
        """Count a request refused for ``reason`` (one of REJECTION_REASONS)."""
        self._rejected[reason].inc()

    def batch_done(self, rows: int, waits_s: list[float]) -> None:
        """A batch of ``rows`` latent rows from ``len(waits_s)`` requests (each waited ``waits_s``) rendered."""
        for wait in waits_s:
            self.queue_wait.observe(wait)
        self.batch_images.observe(rows)
        self.batch_requests.observe(len(waits_s))

    def inversion_done(self, mode: str, outcome: str, seconds: float | None = None, steps: int | None = None) -> None:
        """One /invert request ended with ``outcome`` (INVERSION_OUTCOMES; mode "unknown" when refused before
        its mode was read); an inversion that ran gives its thread's ``seconds`` and ``steps``."""
        self.inversions.labels(mode if mode in INVERSION_MODES else "unknown", outcome).inc()
        if seconds is not None:
            self.inversion_seconds.labels(mode).observe(seconds)
        if steps is not None:
            self.inversion_steps.observe(steps)

    def forward_done(self, rows: int, seconds: float, model: str = "") -> None:
        self.forward_seconds.observe(seconds)
        self.images_generated.labels(model).inc(rows)


def _route_template(scope: Scope, path: str, root_path: str) -> str:
    """The matched route's path template; ``<unmatched>`` for 404s (bounded label values)."""
    route = scope.get("route")
    if route is not None and hasattr(route, "path"):
        return str(route.path)
    app = scope.get("app")
    original = {**scope, "path": path, "root_path": root_path}  # routing rewrote them inside a mount
    for candidate in getattr(getattr(app, "router", None), "routes", []):  # mounts (StaticFiles) set no "route"
        match, _ = candidate.matches(original)
        if match == Match.FULL:
            return str(getattr(candidate, "path", "<unmatched>"))
    return "<unmatched>"


_PROBE_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
ARRIVED = "dcgan_arrived"  # request.state key: time.monotonic() when the app first saw the request


class HttpMetricsMiddleware:
    """Pure ASGI middleware: counts every HTTP response and times it (including errors it never saw a status for)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._series: dict[tuple[str, str, int, str], tuple[Any, Any]] = {}  # labelled children, looked up once

    def _observe(self, route: str, method: str, status: int, model: str, seconds: float) -> None:
        key = (route, method, status, model)
        series = self._series.get(key)
        if series is None:  # bounded: route templates x methods x statuses x loaded names
            m = self.metrics
            series = m.http_requests.labels(*key[:2], str(status), model), m.http_duration.labels(route, method, model)
            self._series[key] = series
        series[0].inc()
        series[1].observe(seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: dict[str, Any] = {"code": 500}  # an exception that escapes before a response start is a 500

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        path, root_path = scope["path"], scope.get("root_path", "")  # routing rewrites them inside mounts
        start = time.perf_counter()
        state = scope.setdefault("state", {})
        state[ARRIVED] = time.monotonic()  # the request deadline counts from here
        counted = path not in _PROBE_PATHS  # a scrape must not count itself as load
        if counted:
            self.metrics.in_flight += 1
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if counted:
                self.metrics.in_flight -= 1
            route = _route_template(scope, path, root_path)
            self._observe(route, scope["method"], status["code"], state.get(MODEL, ""), time.perf_counter() - start)
