"""Bad input never makes a 500: every row is a 422 whose ``loc`` names the field; 413 above the body
cap with and without Content-Length; 401 without the key when one is set."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from app.runtime.settings import Settings
from tests.app.conftest import TINY, Served, serve

pytestmark = pytest.mark.anyio
NZ = TINY.nz
GOOD = [0.0] * NZ
RAW = {"content-type": "application/json"}
ONE = {"name": "t", "weight": 1, "seeds": [1]}  # a valid term
Q, B = "query", "body"  # where a field lives
REST = b", 0.0" * (NZ - 1) + b"]]}"  # the rest of a one-latent body whose first value is spelled out

# (id, method, path, params, json body or raw bytes, the loc one of the 422's errors must have)
TABLE: list[tuple[str, str, str, dict[str, Any], Any, tuple[str | int, ...]]] = [
    ("n zero", "POST", "/generate", {"n": 0}, None, (Q, "n")),
    ("n above max", "POST", "/generate", {"n": 65}, None, (Q, "n")),
    ("n far above", "POST", "/generate", {"n": 10**9}, None, (Q, "n")),
    ("n not an int", "POST", "/generate", {"n": "abc"}, None, (Q, "n")),
    ("n a float", "POST", "/generate", {"n": 1.5}, None, (Q, "n")),
    ("seed negative", "POST", "/generate", {"seed": -1}, None, (Q, "seed")),
    ("seed above 2^32-1", "POST", "/generate", {"seed": 2**32}, None, (Q, "seed")),
    ("seed+n overflows", "POST", "/generate", {"seed": 2**32 - 1, "n": 2}, None, (Q, "seed")),
    ("seed not an int", "POST", "/generate", {"seed": "x1"}, None, (Q, "seed")),
    ("truncation zero", "POST", "/generate", {"truncation": 0}, None, (Q, "truncation")),
    ("truncation nan", "POST", "/generate", {"truncation": "nan"}, None, (Q, "truncation")),
    ("format unknown", "POST", "/generate", {"format": "bmp"}, None, (Q, "format")),
    ("body seeds negative", "POST", "/generate", {}, {"seeds": [1, -1]}, (B, "seeds", 1)),
    ("body seeds too big", "POST", "/generate", {}, {"seeds": [2**32]}, (B, "seeds", 0)),
    ("body seeds float", "POST", "/generate", {}, {"seeds": [1.5]}, (B, "seeds", 0)),
    ("body seeds string", "POST", "/generate", {}, {"seeds": ["1"]}, (B, "seeds", 0)),
    ("body seeds empty", "POST", "/generate", {}, {"seeds": []}, (B, "seeds")),
    ("body seeds above max", "POST", "/generate", {}, {"seeds": list(range(65))}, (B, "seeds")),
    ("body seeds and ?seed", "POST", "/generate", {"seed": 3}, {"seeds": [1]}, (Q, "seed")),
    ("body n disagrees", "POST", "/generate", {"n": 2}, {"seeds": [1]}, (Q, "n")),
    ("body both sources", "POST", "/generate", {}, {"seeds": [1], "latents": [GOOD]}, (B, "latents")),
    ("body no source", "POST", "/generate", {}, {}, (B, "latents")),
    ("body extra field", "POST", "/generate", {}, {"seeds": [1], "color": "red"}, (B, "color")),
    ("latent too short", "POST", "/generate", {}, {"latents": [[0.0] * (NZ - 1)]}, (B, "latents", 0)),
    ("latent too long", "POST", "/generate", {}, {"latents": [GOOD, [0.0] * (NZ + 1)]}, (B, "latents", 1)),
    ("latent NaN", "POST", "/generate", {}, b'{"latents": [[NaN' + REST, (B, "latents", 0, 0)),
    ("latent inf", "POST", "/generate", {}, b'{"latents": [[Infinity' + REST, (B, "latents", 0, 0)),
    ("latent -inf", "POST", "/generate", {}, b'{"latents": [[-Infinity' + REST, (B, "latents", 0, 0)),
    ("latent absurd", "POST", "/generate", {}, {"latents": [[1e30, *GOOD[1:]]]}, (B, "latents", 0, 0)),
    ("latent booleans", "POST", "/generate", {}, {"latents": [[False] * NZ]}, (B, "latents", 0, 0)),
    ("latent not numbers", "POST", "/generate", {}, {"latents": [["a"] * NZ]}, (B, "latents", 0, 0)),
    ("latent with truncation", "POST", "/generate", {"truncation": 1.0}, {"latents": [GOOD]}, (Q, "truncation")),
    ("not JSON", "POST", "/generate", {}, b"{seeds: [1]", (B, 1)),
    ("steps one", "POST", "/interpolate", {}, {"seed_a": 1, "seed_b": 2, "steps": 1}, (B, "steps")),
    ("steps above max", "POST", "/interpolate", {}, {"seed_a": 1, "seed_b": 2, "steps": 33}, (B, "steps")),
    ("steps absurd", "POST", "/interpolate", {}, {"seed_a": 1, "seed_b": 2, "steps": 10**6}, (B, "steps")),
    ("steps float", "POST", "/interpolate", {}, {"seed_a": 1, "seed_b": 2, "steps": 2.5}, (B, "steps")),
    ("method unknown", "POST", "/interpolate", {}, {"seed_a": 1, "seed_b": 2, "method": "cubic"}, (B, "method")),
    ("interp format", "POST", "/interpolate", {}, {"seed_a": 1, "seed_b": 2, "format": "mp4"}, (B, "format")),
    ("end missing", "POST", "/interpolate", {}, {"seed_a": 1}, (B, "latent_b")),
    ("end twice", "POST", "/interpolate", {}, {"seed_a": 1, "latent_a": GOOD, "seed_b": 2}, (B, "latent_a")),
    ("end latent short", "POST", "/interpolate", {}, {"seed_a": 1, "latent_b": [0.0]}, (B, "latent_b", 0)),
    ("interp seed big", "POST", "/interpolate", {}, {"seed_a": 2**40, "seed_b": 2}, (B, "seed_a")),
    ("interp extra", "POST", "/interpolate", {}, {"seed_a": 1, "seed_b": 2, "fps": 9}, (B, "fps")),
    ("terms empty", "POST", "/arithmetic", {}, {"terms": []}, (B, "terms")),
    ("terms huge", "POST", "/arithmetic", {}, {"terms": [ONE] * 9}, (B, "terms")),
    ("exemplars huge", "POST", "/arithmetic", {}, {"terms": [ONE | {"seeds": [*range(9)]}]}, (B, "terms", 0, "seeds")),
    ("no exemplars", "POST", "/arithmetic", {}, {"terms": [{"name": "t", "weight": 1}]}, (B, "terms", 0, "direction")),
    ("too many images", "POST", "/arithmetic", {},
     {"terms": [{"name": str(i), "weight": 1, "seeds": list(range(8))} for i in range(8)]}, (B, "terms")),
    ("weight inf", "POST", "/arithmetic", {}, b'{"terms": [{"name": "t", "weight": -Infinity}]}',
     (B, "terms", 0, "weight")),
    ("jitter boolean", "POST", "/arithmetic", {}, {"terms": [ONE], "jitter": False}, (B, "jitter")),
    ("weight huge", "POST", "/arithmetic", {}, {"terms": [ONE | {"weight": 1e9}]}, (B, "terms", 0, "weight")),
    ("neighbours above", "POST", "/arithmetic", {}, {"terms": [ONE], "neighbours": 17}, (B, "neighbours")),
    ("term extra", "POST", "/arithmetic", {}, {"terms": [ONE | {"x": 0}]}, (B, "terms", 0, "x")),
    ("arith format", "POST", "/arithmetic", {}, {"terms": [ONE], "format": "gif"}, (B, "format")),
    ("latents seeds text", "GET", "/latents", {"seeds": "1,abc"}, None, (Q, "seeds")),
    ("latents seeds empty", "GET", "/latents", {"seeds": ""}, None, (Q, "seeds")),
    ("latents seeds negative", "GET", "/latents", {"seeds": "-1"}, None, (Q, "seeds")),
    ("latents seeds too big", "GET", "/latents", {"seeds": str(2**32)}, None, (Q, "seeds")),
    ("latents seeds many", "GET", "/latents", {"seeds": ",".join(["1"] * 257)}, None, (Q, "seeds")),
    ("latents seeds missing", "GET", "/latents", {}, None, (Q, "seeds")),
]  # fmt: skip


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def shared(checkpoint: Any) -> AsyncIterator[Served]:
    """One app for the whole table (max 64 images per request, 32 interpolation steps)."""
    async with serve(Settings(checkpoint=checkpoint, device="cpu", max_batch_images=64)) as served:
        yield served


@pytest.mark.parametrize(("case", "method", "path", "params", "body", "loc"), TABLE, ids=[row[0] for row in TABLE])
async def test_bad_input_is_422_naming_the_field(
    shared: Served, case: str, method: str, path: str, params: dict[str, Any], body: Any, loc: tuple[str | int, ...]
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
    assert list(loc) in [e["loc"] for e in errors], errors  # the exact field, as a client's form would mark it
    assert all(e["msg"] and e["type"] for e in errors), errors
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
