"""Faces at cacheable URLs: the POST routes' bytes, immutable headers, a strong ETag known before any forward
(304 without rendering), the default alias as a short-lived redirect, and the bounded LRU behind them."""

from __future__ import annotations

import base64

import pytest

from app.registry.faces import IMMUTABLE, FaceCache
from app.runtime.metrics import Metrics
from tests.app.conftest import Served

pytestmark = pytest.mark.anyio


async def pinned(served: Served) -> str:
    model = (await served.http.get("/v1/models")).json()["models"][0]
    return f"/v1/models/{model['name']}@{model['model_id']}"


async def test_a_face_is_the_post_routes_bytes_with_immutable_headers(served: Served) -> None:
    base = await pinned(served)
    for params in ({}, {"truncation": 1.5}):
        r = await served.http.get(f"{base}/faces/42.png", params=params)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert r.headers["cache-control"] == IMMUTABLE == "public, max-age=31536000, immutable"
        etag = r.headers["etag"]
        assert etag.startswith('"') and not etag.startswith("W/")
        assert r.headers["x-model-id"] == served.service.info.model_id
        posted = await served.http.post("/generate", params={"seed": 42, "n": 1, "format": "json", **params})
        assert r.content == base64.b64decode(posted.json()["images"][0]["png"])
    other = await served.http.get(f"{base}/faces/43.png")
    assert other.headers["etag"] != etag and other.content != r.content


async def test_if_none_match_is_304_without_a_forward(served: Served) -> None:
    base = await pinned(served)
    etag = (await served.http.get(f"{base}/faces/7.png")).headers["etag"]
    served.app.state.face_cache = FaceCache(1 << 20, served.service.metrics)  # forget the bytes: the tag suffices
    images = served.metric("dcgan_images_generated_total")
    for header in (etag, f'"nope", {etag}'):
        r = await served.http.get(f"{base}/faces/7.png", headers={"If-None-Match": header})
        assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
        assert r.headers["cache-control"] == IMMUTABLE
    assert served.metric("dcgan_images_generated_total") == images
    r = await served.http.get(f"{base}/faces/7.png", headers={"If-None-Match": '"other"'})
    assert r.status_code == 200 and served.metric("dcgan_images_generated_total") == images + 1


async def test_the_cache_serves_repeats_without_a_forward(served: Served) -> None:
    base = await pinned(served)
    first = await served.http.get(f"{base}/faces/9.png")
    images, hits = (
        served.metric("dcgan_images_generated_total"),
        served.metric("dcgan_face_cache_requests_total", outcome="hit"),
    )
    again = await served.http.get(f"{base}/faces/9.png")
    assert again.content == first.content and served.metric("dcgan_images_generated_total") == images
    assert served.metric("dcgan_face_cache_requests_total", outcome="hit") == hits + 1
    assert served.metric("dcgan_face_cache_bytes") >= len(first.content)


async def test_an_edit_is_the_edit_routes_bytes(served: Served) -> None:
    base = await pinned(served)
    r = await served.http.get(f"{base}/faces/27/edit.png", params={"sefa-1": -1, "sefa-0": 1.5, "truncation": 2})
    assert r.status_code == 200 and r.headers["cache-control"] == IMMUTABLE, r.text
    body = {
        "seed": 27, "truncation": 2.0, "strengths": [1.0], "format": "json",
        "direction": [{"name": "sefa-0", "weight": 1.5}, {"name": "sefa-1", "weight": -1.0}],
    }  # fmt: skip
    posted = await served.http.post("/edit", json=body)
    assert r.content == base64.b64decode(posted.json()["frames"][0]["png"])
    swapped = await served.http.get(f"{base}/faces/27/edit.png", params={"sefa-0": 1.5, "sefa-1": -1, "truncation": 2})
    assert swapped.headers["etag"] == r.headers["etag"]  # the query's order does not matter
    for params in ({}, {"nope": 1}, {"sefa-0": "x"}, {"sefa-0": 11}, {"sefa-0": "nan"}):
        assert (await served.http.get(f"{base}/faces/27/edit.png", params=params)).status_code == 422, params


async def test_the_default_alias_redirects_briefly_and_stale_ids_are_404(served: Served) -> None:
    base = await pinned(served)
    r = await served.http.get("/faces/5.png", params={"truncation": 1.5})
    assert r.status_code == 307 and r.headers["location"] == f"{base}/faces/5.png?truncation=1.5"
    assert r.headers["cache-control"] == "public, max-age=60"
    followed = await served.http.get(r.headers["location"])
    assert followed.status_code == 200
    name = base.split("/")[-1].split("@")[0]
    stale = await served.http.get(f"/v1/models/{name}@{name}-000000000000/faces/5.png")
    assert stale.status_code == 404 and served.service.info.model_id in stale.json()["detail"]
    assert (await served.http.get(f"/v1/models/nobody@{name}-000000000000/faces/5.png")).status_code == 404
    assert (await served.http.get("/faces/5.png", params={"model": "../x"})).status_code == 422
    assert (await served.http.get(f"{base}/faces/4294967296.png")).status_code == 422


def test_the_cache_is_bounded_in_bytes_least_recently_used_first_out() -> None:
    metrics = Metrics()
    cache = FaceCache(100, metrics)
    for key in "abc":
        cache.put(key, b"x" * 40)  # c pushes a out: 120 > 100
    assert cache.get("a") is None and cache.get("b") is not None  # b is now the most recent
    cache.put("d", b"x" * 40)  # pushes c, not b
    assert cache.get("c") is None and cache.get("b") is not None and cache.bytes == 80
    cache.put("huge", b"x" * 101)
    assert cache.get("huge") is None
    assert FaceCache(0, metrics).get("a") is None
