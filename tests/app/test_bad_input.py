"""Bad input never makes a 500: every row is a 422 whose ``loc`` names the field; 413 above the body
cap with and without Content-Length; 401 without the key when one is set."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from app.settings import Settings
from tests.app.conftest import TINY, Served, serve

pytestmark = pytest.mark.anyio
NZ = TINY.nz
GOOD = [0.0] * NZ
RAW = {"content-type": "application/json"}
ONE = {"name": "t", "weight": 1, "seeds": [1]}  # a valid term

# (id, method, path, params, json body or raw bytes, field that the 422's loc must name)
TABLE: list[tuple[str, str, str, dict[str, Any], Any, str]] = [
    ("n zero", "POST", "/generate", {"n": 0}, None, "n"),
    ("n above max", "POST", "/generate", {"n": 65}, None, "n"),
    ("n far above", "POST", "/generate", {"n": 10**9}, None, "n"),
    ("n not an int", "POST", "/generate", {"n": "abc"}, None, "n"),
    ("n a float", "POST", "/generate", {"n": 1.5}, None, "n"),
    ("seed negative", "POST", "/generate", {"seed": -1}, None, "seed"),
    ("seed above 2^32-1", "POST", "/generate", {"seed": 2**32}, None, "seed"),
    ("seed+n overflows", "POST", "/generate", {"seed": 2**32 - 1, "n": 2}, None, "seed"),
    ("seed not an int", "POST", "/generate", {"seed": "x1"}, None, "seed"),
    ("truncation zero", "POST", "/generate", {"truncation": 0}, None, "truncation"),
    ("truncation nan", "POST", "/generate", {"truncation": "nan"}, None, "truncation"),
    ("format unknown", "POST", "/generate", {"format": "bmp"}, None, "format"),
    ("body seeds negative", "POST", "/generate", {}, {"seeds": [1, -1]}, "seeds"),
    ("body seeds too big", "POST", "/generate", {}, {"seeds": [2**32]}, "seeds"),
    ("body seeds float", "POST", "/generate", {}, {"seeds": [1.5]}, "seeds"),
    ("body seeds string", "POST", "/generate", {}, {"seeds": ["1"]}, "seeds"),
    ("body seeds empty", "POST", "/generate", {}, {"seeds": []}, "seeds"),
    ("body seeds above max", "POST", "/generate", {}, {"seeds": list(range(65))}, "seeds"),
    ("body seeds and ?seed", "POST", "/generate", {"seed": 3}, {"seeds": [1]}, "seed"),
    ("body n disagrees", "POST", "/generate", {"n": 2}, {"seeds": [1]}, "n"),
    ("body both sources", "POST", "/generate", {}, {"seeds": [1], "latents": [GOOD]}, "latents"),
    ("body no source", "POST", "/generate", {}, {}, "latents"),
    ("body extra field", "POST", "/generate", {}, {"seeds": [1], "color": "red"}, "color"),
    ("latent too short", "POST", "/generate", {}, {"latents": [[0.0] * (NZ - 1)]}, "latents"),
    ("latent too long", "POST", "/generate", {}, {"latents": [GOOD, [0.0] * (NZ + 1)]}, "latents"),
    ("latent NaN", "POST", "/generate", {}, b'{"latents": [[NaN' + b", 0.0" * (NZ - 1) + b"]]}", "latents"),
    ("latent inf", "POST", "/generate", {}, b'{"latents": [[Infinity' + b", 0.0" * (NZ - 1) + b"]]}", "latents"),
    ("latent -inf", "POST", "/generate", {}, b'{"latents": [[-Infinity' + b", 0.0" * (NZ - 1) + b"]]}", "latents"),
    ("latent absurd", "POST", "/generate", {}, {"latents": [[1e30, *GOOD[1:]]]}, "latents"),
    ("latent booleans", "POST", "/generate", {}, {"latents": [[False] * NZ]}, "latents"),
    ("latent not numbers", "POST", "/generate", {}, {"latents": [["a"] * NZ]}, "latents"),
    ("latent with truncation", "POST", "/generate", {"truncation": 1.0}, {"latents": [GOOD]}, "truncation"),
    ("not JSON", "POST", "/generate", {}, b"{seeds: [1]", "body"),
    ("steps one", "POST", "/interpolate", {}, {"seed_a": 1, "seed_b": 2, "steps": 1}, "steps"),
    ("steps above max", "POST", "/interpolate", {}, {"seed_a": 1, "seed_b": 2, "steps": 33}, "steps"),
    ("steps absurd", "POST", "/interpolate", {}, {"seed_a": 1, "seed_b": 2, "steps": 10**6}, "steps"),
    ("steps float", "POST", "/interpolate", {}, {"seed_a": 1, "seed_b": 2, "steps": 2.5}, "steps"),
    ("method unknown", "POST", "/interpolate", {}, {"seed_a": 1, "seed_b": 2, "method": "cubic"}, "method"),
    ("interp format", "POST", "/interpolate", {}, {"seed_a": 1, "seed_b": 2, "format": "mp4"}, "format"),
    ("end missing", "POST", "/interpolate", {}, {"seed_a": 1}, "seed_b"),
    ("end twice", "POST", "/interpolate", {}, {"seed_a": 1, "latent_a": GOOD, "seed_b": 2}, "seed_a"),
    ("end latent short", "POST", "/interpolate", {}, {"seed_a": 1, "latent_b": [0.0]}, "latent_b"),
    ("interp seed big", "POST", "/interpolate", {}, {"seed_a": 2**40, "seed_b": 2}, "seed_a"),
    ("interp extra", "POST", "/interpolate", {}, {"seed_a": 1, "seed_b": 2, "fps": 9}, "fps"),
    ("terms empty", "POST", "/arithmetic", {}, {"terms": []}, "terms"),
    ("terms huge", "POST", "/arithmetic", {}, {"terms": [ONE] * 9}, "terms"),
    ("exemplars huge", "POST", "/arithmetic", {}, {"terms": [ONE | {"seeds": list(range(9))}]}, "seeds"),
    ("exemplars none", "POST", "/arithmetic", {}, {"terms": [{"name": "t", "weight": 1}]}, "terms"),
    ("too many images", "POST", "/arithmetic", {},
     {"terms": [{"name": str(i), "weight": 1, "seeds": list(range(8))} for i in range(8)]}, "terms"),
    ("weight inf", "POST", "/arithmetic", {}, b'{"terms": [{"name": "t", "weight": -Infinity}]}', "weight"),
    ("jitter boolean", "POST", "/arithmetic", {}, {"terms": [ONE], "jitter": False}, "jitter"),
    ("weight huge", "POST", "/arithmetic", {}, {"terms": [{"name": "t", "weight": 1e9, "seeds": [1]}]}, "weight"),
    ("neighbours above", "POST", "/arithmetic", {}, {"terms": [ONE], "neighbours": 17}, "neighbours"),
    ("term extra", "POST", "/arithmetic", {}, {"terms": [ONE | {"x": 0}]}, "x"),
    ("arith format", "POST", "/arithmetic", {}, {"terms": [ONE], "format": "gif"}, "format"),
    ("latents seeds text", "GET", "/latents", {"seeds": "1,abc"}, None, "seeds"),
    ("latents seeds empty", "GET", "/latents", {"seeds": ""}, None, "seeds"),
    ("latents seeds negative", "GET", "/latents", {"seeds": "-1"}, None, "seeds"),
    ("latents seeds too big", "GET", "/latents", {"seeds": str(2**32)}, None, "seeds"),
    ("latents seeds many", "GET", "/latents", {"seeds": ",".join(["1"] * 257)}, None, "seeds"),
    ("latents seeds missing", "GET", "/latents", {}, None, "seeds"),
]  # fmt: skip


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def shared(checkpoint: Any) -> AsyncIterator[Served]:
    """One app for the whole table (max 64 images per request, 32 interpolation steps)."""
    async with serve(Settings(checkpoint=checkpoint, device="cpu", max_batch_images=64)) as served:
        yield served


@pytest.mark.parametrize(("case", "method", "path", "params", "body", "field"), TABLE, ids=[row[0] for row in TABLE])
async def test_bad_input_is_422_naming_the_field(
    shared: Served, case: str, method: str, path: str, params: dict[str, Any], body: Any, field: str
) -> None:
    before = shared.metric("dcgan_rejections_total", reason="invalid")
    kwargs: dict[str, Any] = {"params": params}
    if isinstance(body, bytes):
        kwargs |= {"content": body, "headers": RAW}
    elif body is not None:
        kwargs["json"] = body
    r = await shared.http.request(method, path, **kwargs)
    assert r.status_code == 422, r.text
    errors = r.json()["detail"]
    assert any(field in map(str, e["loc"]) or field in e["msg"] for e in errors), errors
    assert shared.metric("dcgan_rejections_total", reason="invalid") == before + 1


async def test_body_cap_with_content_length(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings(max_body_bytes=4096)) as served:
        big = b'{"seeds": [' + b"1," * 4000 + b"1]}"
        r = await served.http.post("/generate", content=big, headers=RAW)
        assert r.status_code == 413
        ok = await served.http.post("/generate", json={"seeds": [1, 2]})
        assert ok.status_code == 200


async def test_body_cap_without_content_length(make_settings: Callable[..., Settings]) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # streamed: httpx sends no Content-Length
        yield b'{"seeds": ['
        for _ in range(100):
            yield b"1," * 50
        yield b"1]}"

    async with serve(make_settings(max_body_bytes=4096)) as served:
        r = await served.http.post("/generate", content=chunks(), headers=RAW)
        assert "content-length" not in r.request.headers
        assert r.status_code == 413


async def test_api_key(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings(api_key="s3cret")) as served:
        http = served.http
        assert (await http.post("/generate", params={"n": 1})).status_code == 401
        assert (await http.post("/generate", params={"n": 1}, headers={"X-API-Key": "wrong"})).status_code == 401
        assert (await http.get("/latents", params={"seeds": "1"})).status_code == 401
        assert (await http.post("/interpolate", json={"seed_a": 1, "seed_b": 2})).status_code == 401
        assert (await http.post("/generate", params={"n": 1}, headers={"X-API-Key": "s3cret"})).status_code == 200
        bearer = {"Authorization": "Bearer s3cret"}
        assert (await http.post("/generate", params={"n": 1}, headers=bearer)).status_code == 200
        for probe in ("/healthz", "/readyz", "/metrics", "/v1/model", "/"):
            assert (await http.get(probe)).status_code == 200, probe
