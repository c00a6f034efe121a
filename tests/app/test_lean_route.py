"""``LeanRoute`` answers every request as FastAPI's own handling of the same route does (status, headers,
bytes), and refuses, when declared, the signatures it would handle differently."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, BackgroundTasks, Depends, Header, Query, Request, Response
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from starlette.datastructures import QueryParams

from app.main import create_app
from app.runtime.settings import Settings
from app.web.deps import ServingService
from app.web.lean_route import LeanRoute, query_params
from tests.app.conftest import TINY, Served, client_for
from tests.app.test_bad_input import TABLE

pytestmark = pytest.mark.anyio
JSON = {"content-type": "application/json"}
CAP = 16384
KEY = "s3cret"
GOOD = [0.0] * TINY.nz


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


# (id, method, path, params, body bytes or None, headers)
Case = tuple[str, str, str, dict[str, Any], bytes | None, dict[str, str]]
VALID: list[Case] = [
    ("generate grid", "POST", "/generate", {"n": 2, "seed": 5}, None, {}),
    ("generate json", "POST", "/generate", {"n": 2, "seed": 5, "format": "json"}, None, {}),
    ("generate truncated", "POST", "/generate", {"n": 1, "seed": 5, "truncation": 0.5}, None, {}),
    ("generate seeds body", "POST", "/generate", {}, body({"seeds": [1, 2]}), JSON),
    ("generate latents body", "POST", "/generate", {"format": "json"}, body({"latents": [GOOD]}), JSON),
    ("interpolate strip", "POST", "/interpolate", {}, body({"seed_a": 1, "seed_b": 2, "steps": 3}), JSON),
    ("interpolate gif", "POST", "/interpolate", {}, body({"seed_a": 1, "seed_b": 2, "format": "gif"}), JSON),
    ("arithmetic", "POST", "/arithmetic", {}, body({"terms": [{"name": "t", "weight": 1, "seeds": [1]}]}), JSON),
    ("edit", "POST", "/edit", {}, body({"seed": 1, "direction": "sefa-0", "strengths": [0, 1]}), JSON),
    ("edit json", "POST", "/edit", {}, body({"seed": 1, "direction": "sefa-0", "format": "json"}), JSON),
    ("directions", "GET", "/v1/directions", {}, None, {}),
]
EDGES: list[Case] = [
    ("repeated key: the last wins", "POST", "/generate", {"n": ["9", "2"], "seed": 1}, None, {}),
    ("empty value", "POST", "/generate", {"n": "", "seed": 1}, None, {}),
    ("unknown parameter", "POST", "/generate", {"n": 1, "seed": 1, "colour": "red"}, None, {}),
    ("no content type", "POST", "/generate", {}, body({"seeds": [1]}), {}),
    ("text/plain", "POST", "/generate", {}, body({"seeds": [1]}), {"content-type": "text/plain"}),
    ("+json with charset", "POST", "/generate", {}, body({"seeds": [1]}),
     {"content-type": "application/vnd.faces+json; charset=utf-8"}),
    ("UTF-16 JSON", "POST", "/generate", {}, '{"seeds": [3]}'.encode("utf-16"), JSON),
    ("invalid UTF-8", "POST", "/generate", {}, b'{"seeds": [1], "x": "\xff"}', JSON),
    ("deep nesting", "POST", "/generate", {}, b"[" * 5000 + b"]" * 5000, JSON),
    ("huge number", "POST", "/generate", {}, b'{"seeds": [' + b"9" * 5000 + b"]}", JSON),
    ("JSON null, optional body", "POST", "/generate", {"n": 1, "seed": 1}, b"null", JSON),
    ("JSON null, required body", "POST", "/interpolate", {}, b"null", JSON),
    ("JSON list", "POST", "/interpolate", {}, b"[1, 2]", JSON),
    ("no body, required", "POST", "/interpolate", {}, None, JSON),
    ("empty JSON object", "POST", "/edit", {}, b"{}", JSON),
    ("bad JSON and bad n", "POST", "/generate", {"n": 0}, b"{", JSON),
    ("bad n and bad body", "POST", "/generate", {"n": 0}, body({"seeds": [-1]}), JSON),
    ("wrong method", "GET", "/generate", {}, None, {}),
    ("unknown direction", "POST", "/edit", {}, body({"seed": 1, "direction": "nope"}), JSON),
]  # fmt: skip
EXPECTED = {  # what some edges must be, beyond "as FastAPI answers"
    "repeated key: the last wins": 200, "empty value": 422, "no content type": 422, "text/plain": 422,
    "+json with charset": 200, "UTF-16 JSON": 200, "invalid UTF-8": 400, "deep nesting": 400, "huge number": 400,
    "JSON null, optional body": 200, "JSON null, required body": 422, "no body, required": 422,
    "bad JSON and bad n": 422, "wrong method": 405, "unknown direction": 422, "JSON list": 422,
    "empty JSON object": 422, "bad n and bad body": 422,
}  # fmt: skip
BAD: list[Case] = [
    (name, method, path, params, data if isinstance(data, bytes) else None if data is None else body(data), JSON)
    for name, method, path, params, data, _ in TABLE
]
KEYED: list[Case] = [
    ("no key", "POST", "/generate", {"n": 1, "seed": 1}, None, {}),
    ("wrong key, bad n", "POST", "/generate", {"n": 0}, None, {"x-api-key": "nope"}),
    ("wrong key, bad JSON", "POST", "/generate", {}, b"{", JSON | {"x-api-key": "nope"}),
    ("bearer", "POST", "/generate", {"n": 1, "seed": 1}, None, {"authorization": f"Bearer {KEY}"}),
    ("wrong key, directions", "GET", "/v1/directions", {}, None, {"x-api-key": "nope"}),
]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def pair(checkpoint: Any) -> AsyncIterator[Callable[[bool], tuple[Served, Served]]]:
    """Two apps each with and without a key: LeanRoute's path, and FastAPI's own (``LeanConfig.stock``)."""
    async with AsyncExitStack() as stack:
        apps: dict[tuple[bool, bool], Served] = {}
        for keyed in (False, True):
            for stock in (False, True):
                key = SecretStr(KEY) if keyed else None
                settings = Settings(checkpoint=checkpoint, device="cpu", max_batch_images=64, max_body_bytes=CAP)
                settings = settings.model_copy(update={"api_key": key})
                app = create_app(settings)
                app.state.lean = dataclasses.replace(app.state.lean, stock=stock)
                await stack.enter_async_context(app.router.lifespan_context(app))
                apps[keyed, stock] = Served(app, await stack.enter_async_context(client_for(app)))
        yield lambda keyed: (apps[keyed, False], apps[keyed, True])


async def answer(served: Served, case: Case) -> tuple[int, list[tuple[str, str]], bytes]:
    _, method, path, params, data, headers = case
    r = await served.http.request(method, path, params=params, content=data, headers=headers)
    return r.status_code, sorted(r.headers.items()), r.content


def ids(cases: list[Case]) -> list[str]:
    return [c[0] for c in cases]


@pytest.mark.parametrize("case", VALID + EDGES + BAD, ids=ids(VALID + EDGES + BAD))
async def test_answers_as_fastapi_does(pair: Callable[[bool], tuple[Served, Served]], case: Case) -> None:
    lean, stock = pair(False)
    ours, theirs = await answer(lean, case), await answer(stock, case)
    assert ours == theirs
    assert ours[0] == EXPECTED.get(case[0], 422 if case in BAD else 200), ours[2][:300]


@pytest.mark.parametrize("case", KEYED, ids=ids(KEYED))
async def test_answers_as_fastapi_does_with_a_key(pair: Callable[[bool], tuple[Served, Served]], case: Case) -> None:
    lean, stock = pair(True)
    assert await answer(lean, case) == await answer(stock, case)


async def test_over_the_cap_is_the_documented_413(pair: Callable[[bool], tuple[Served, Served]]) -> None:
    """413 on both paths, however the size shows; the lean path always answers the documented JSON error,
    where FastAPI's path answers Starlette's plain text when a Content-Length announces it."""

    async def chunks() -> AsyncIterator[bytes]:  # streamed: no Content-Length
        yield b'{"seeds": ['
        for _ in range(400):
            yield b"1," * 50
        yield b"1]}"

    lean, stock = pair(False)
    for served in (lean, stock):
        r = await served.http.post("/generate", content=chunks(), headers=JSON)
        assert "content-length" not in r.request.headers
        assert (r.status_code, r.json()) == (413, {"detail": "Content Too Large"})
    for headers, data in ((JSON, body({"seeds": [1] * 6000})), (JSON | {"content-length": str(10 * CAP)}, b"{}")):
        assert (await stock.http.post("/generate", content=data, headers=headers)).status_code == 413
        r = await lean.http.post("/generate", content=data, headers=headers)
        assert (r.status_code, r.json()) == (413, {"detail": "Content Too Large"})


async def test_the_lean_path_is_the_one_taken(pair: Callable[[bool], tuple[Served, Served]]) -> None:
    """Unless ``stock``, FastAPI's handler never runs: the comparison above compares two paths."""
    lean, stock = pair(False)
    route = next(r for r in lean.app.routes if isinstance(r, LeanRoute) and r.path == "/generate")
    calls: list[str] = []
    reference = route.reference_app

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["path"])
        await reference(scope, receive, send)

    route.reference_app = spy
    try:
        assert (await lean.http.post("/generate", params={"n": 1, "seed": 1})).status_code == 200
        assert calls == []
        assert (await stock.http.post("/generate", params={"n": 1, "seed": 1})).status_code == 200
        assert calls == ["/generate"]
    finally:
        route.reference_app = reference


async def dependency(request: Request) -> int:
    return 1


def declare(endpoint: Callable[..., Any]) -> None:
    APIRouter(route_class=LeanRoute).post("/x")(endpoint)


def test_refuses_what_it_would_handle_differently() -> None:
    async def fine(request: Request, service: ServingService, n: Annotated[int, Query()] = 1) -> Response:
        return Response()

    declare(fine)

    async def two_dependencies(a: Annotated[int, Depends(dependency)], b: ServingService) -> Response:
        return Response()

    async def header(service: ServingService, x: Annotated[str, Header()]) -> Response:
        return Response()

    async def listed(service: ServingService, n: Annotated[list[int], Query()]) -> Response:
        return Response()

    async def background(service: ServingService, tasks: BackgroundTasks) -> Response:
        return Response()

    def plain(service: ServingService) -> Response:
        return Response()

    for endpoint in (two_dependencies, header, listed, background, plain):
        with pytest.raises(TypeError, match="LeanRoute /x: unsupported"):
            declare(endpoint)


@given(st.text(alphabet="ab=&%+;2 \xe9", max_size=24))
def test_query_params_parse_as_starlette_does(text: str) -> None:
    """The split fast path and the parse_qsl fallback agree with Starlette's QueryParams (last key wins)."""
    raw = text.encode("latin-1")
    assert query_params(raw) == dict(QueryParams(raw))


@pytest.mark.parametrize("version", ["0.999.0", "1.0.0", "0.142.1", "dev"])
async def test_an_untested_fastapi_takes_fastapis_own_path_with_one_warning(
    version: str, checkpoint: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``pip install .`` may bring a FastAPI newer than the one LeanRoute reads the private modules of: the
    service then starts, warns once, and answers every request through FastAPI's own path."""
    import fastapi

    from app.web import lean_route

    reference = await _one_generate(create_app(Settings(checkpoint=checkpoint, device="cpu", max_batch_images=64)))
    monkeypatch.setattr(fastapi, "__version__", version)
    assert lean_route.fastapi_unknown() is not None and version in str(lean_route.fastapi_unknown())
    router = APIRouter(route_class=LeanRoute)

    @router.post("/odd/{path_param}")  # a signature LeanRoute refuses: on an unknown FastAPI it is not inspected
    async def odd(path_param: int) -> Response:
        return Response(str(path_param))

    assert not router.routes[0].lean  # type: ignore[attr-defined]

    async def lean_path_must_not_run(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("LeanRoute's own handling ran on an untested FastAPI")

    monkeypatch.setattr(LeanRoute, "_arguments", lean_path_must_not_run)
    caplog.clear()
    app = create_app(Settings(checkpoint=checkpoint, device="cpu", max_batch_images=64))
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "FastAPI" in r.getMessage()]
    assert len(warnings) == 1 and app.state.lean.stock
    assert await _one_generate(app) == reference


async def _one_generate(app: Any) -> tuple[int, bytes]:
    async with app.router.lifespan_context(app), client_for(app) as http:
        r = await http.post("/generate", params={"n": 2, "seed": 3})
        return r.status_code, r.content


def test_a_missing_private_module_is_an_unknown_fastapi(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.web import lean_route

    assert lean_route.fastapi_unknown() is None  # the pinned FastAPI (deploy/constraints.txt) is the tested one
    monkeypatch.setattr(lean_route, "_PRIVATE_IMPORT_ERROR", "No module named 'fastapi._compat'")
    assert "private modules moved" in str(lean_route.fastapi_unknown())
