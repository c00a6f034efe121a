"""Probes before the lifespan has loaded the model, while ready, and after shutdown began."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.main import create_app
from app.runtime.settings import Settings
from tests.app.conftest import client_for, serve

pytestmark = pytest.mark.anyio


async def test_probes_before_during_and_after_load(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings())
    async with client_for(app) as http:
        # before: the process answers, but nothing is loaded
        assert (await http.get("/healthz")).status_code == 200
        r = await http.get("/readyz")
        assert r.status_code == 503 and r.json() == {"status": "starting"}
        r = await http.post("/generate", params={"n": 1})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert (await http.get("/v1/model")).status_code == 503
        assert (await http.get("/metrics")).status_code == 200
        async with app.router.lifespan_context(app):  # load + warm up + start the batcher
            assert (await http.get("/readyz")).json() == {"status": "ready"}
            assert (await http.post("/generate", params={"n": 1})).status_code == 200
            assert (await http.get("/v1/model")).status_code == 200
        # after: draining/stopped is not ready, generation is refused, liveness still answers
        r = await http.get("/readyz")
        assert r.status_code == 503 and r.json() == {"status": "stopping"}
        assert (await http.post("/generate", params={"n": 1})).status_code == 503
        assert (await http.get("/healthz")).status_code == 200


async def test_the_startup_heap_is_frozen_while_serving(make_settings: Callable[..., Settings]) -> None:
    """app.runtime.gc_tuning: the GC never walks the loaded model again while serving; a stopped app gives it back."""
    import gc

    from app.runtime.gc_tuning import GEN0_THRESHOLD

    before = gc.get_threshold()
    async with serve(make_settings()) as served:
        assert gc.get_freeze_count() > 10_000 and gc.get_threshold()[0] == GEN0_THRESHOLD
        assert (await served.http.post("/generate", params={"n": 1, "seed": 1})).status_code == 200
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before
