"""``LeanApp``: a LeanRoute's requests take the short stack, which counts them, answers their errors and
fails as FastAPI's full stack does; everything else takes the full stack."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.runtime.settings import Settings
from app.service import Service
from app.web.lean_app import LeanApp
from tests.app.conftest import Served

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def serving(settings: Settings, *, stock: bool) -> AsyncIterator[Served]:
    """The app through its lifespan; a client that answers a 500 instead of raising the app's exception."""
    app = create_app(settings)
    app.state.lean = dataclasses.replace(app.state.lean, stock=stock)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield Served(app, c)


def requests_counted(served: Served, route: str, status: int) -> float:
    return served.metric("dcgan_http_requests_total", route=route, method="POST", status=str(status))


async def test_a_lean_route_takes_the_short_stack(make_settings: Callable[..., Settings]) -> None:
    for stock in (False, True):
        async with serving(make_settings(), stock=stock) as served:
            assert isinstance(served.app, LeanApp)
            assert (await served.http.post("/generate", params={"n": 1, "seed": 1})).status_code == 200
            assert (await served.http.get("/readyz")).status_code == 200  # not a LeanRoute: the full stack
            assert (served.app._lean_stack is not None) is not stock
            assert requests_counted(served, "/generate", 200) == 1


async def test_both_stacks_count_and_fail_alike(make_settings: Callable[..., Settings], monkeypatch: Any) -> None:
    """A 422, a 503 and an unexpected exception (a bug, not the input): the same answers and the same
    metrics on either stack."""

    async def broken(*args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("a bug")

    answers = []
    for stock in (False, True):
        async with serving(make_settings(), stock=stock) as served:
            invalid = await served.http.post("/generate", params={"n": 0})
            served.service.drain()  # draining still serves: 200
            draining = await served.http.post("/generate", params={"n": 1, "seed": 1})
            monkeypatch.setattr(Service, "generate", broken)
            bug = await served.http.post("/generate", params={"n": 1, "seed": 1})
            monkeypatch.undo()
            counted = [requests_counted(served, "/generate", s) for s in (422, 200, 500)]
            answers.append([(r.status_code, r.content) for r in (invalid, draining, bug)] + [counted])
    assert answers[0] == answers[1]
    assert answers[0][2] == (500, b"Internal Server Error") and answers[0][3] == [1, 1, 1]


async def test_a_trailing_slash_or_another_method_takes_the_full_stack(served: Served) -> None:
    assert (await served.http.get("/generate")).status_code == 405
    slash = await served.http.post("/generate/", params={"n": 1})
    assert slash.status_code == 307 and slash.headers["location"].endswith("/generate?n=1")
