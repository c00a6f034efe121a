"""Probes before the lifespan has loaded the model, while ready, and after shutdown began."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.main import create_app
from app.settings import Settings
from tests.app.conftest import client_for

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
