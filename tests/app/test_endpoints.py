"""Each endpoint through the lifespan: status, media type, sizes, provenance chunks, contracts."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

from models.latent import latents_for_seeds
from tests.app.conftest import TINY, Served

pytestmark = pytest.mark.anyio
SIDE = TINY.image_size
PAD = 2


def image(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def grid_side(cells: int) -> int:
    return cells * (SIDE + PAD) + PAD


async def test_generate_grid_with_seed(served: Served) -> None:
    r = await served.http.post("/generate", params={"n": 6, "seed": 5})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["x-seeds"] == "5,6,7,8,9,10"
    img = image(r.content)
    assert img.size == (grid_side(3), grid_side(2))  # near-square: 3 columns, 2 rows
    assert img.text["dcgan:seeds"] == "5,6,7,8,9,10"
    assert img.text["dcgan:sha256"] == served.service.engine.info.sha256


async def test_generate_random_seeds_are_returned(served: Served) -> None:
    r = await served.http.post("/generate")
    seeds = [int(s) for s in r.headers["x-seeds"].split(",")]
    assert r.status_code == 200 and len(seeds) == 16  # default n
    again = await served.http.post("/generate", json={"seeds": seeds})
    assert again.content == r.content  # the returned seeds reproduce the image


async def test_generate_json_and_latents_round_trip(served: Served) -> None:
    r = await served.http.post("/generate", params={"n": 3, "seed": 40, "format": "json"})
    body = r.json()
    assert [i["seed"] for i in body["images"]] == [40, 41, 42]
    first = image(base64.b64decode(body["images"][0]["png"]))
    assert first.size == (SIDE, SIDE)
    assert first.text["dcgan:seed"] == "40" and first.text["dcgan:truncation"] == "none"
    latents = (await served.http.get("/latents", params={"seeds": "40,41,42"})).json()["latents"]
    back = await served.http.post(
        "/generate", params={"format": "json"}, json={"latents": [x["latent"] for x in latents]}
    )
    assert back.status_code == 200
    for a, b in zip(body["images"], back.json()["images"], strict=True):  # same pixels, different provenance
        assert np.array_equal(
            np.asarray(image(base64.b64decode(a["png"]))), np.asarray(image(base64.b64decode(b["png"])))
        )
    assert back.json()["images"][0]["seed"] is None


async def test_latents_match_the_contract(served: Served) -> None:
    r = await served.http.get("/latents", params={"seeds": "1,2,3", "truncation": 1.5})
    body = r.json()
    expected = latents_for_seeds([1, 2, 3], TINY.nz, 1.5)
    assert r.status_code == 200 and body["nz"] == TINY.nz
    assert np.array_equal(np.array([x["latent"] for x in body["latents"]], dtype=np.float32), expected.numpy())


@pytest.mark.parametrize(("fmt", "media"), [("strip", "image/png"), ("gif", "image/gif"), ("webp", "image/webp")])
async def test_interpolate_formats(served: Served, fmt: str, media: str) -> None:
    r = await served.http.post("/interpolate", json={"seed_a": 1, "seed_b": 2, "steps": 5, "format": fmt})
    assert r.status_code == 200 and r.headers["content-type"] == media
    img = image(r.content)
    if fmt == "strip":
        assert img.size == (grid_side(5), grid_side(1))
    else:
        assert getattr(img, "n_frames", 1) == 8  # 5 forward + 3 back (ping-pong without repeating the ends)


async def test_interpolate_json_ends_are_the_seeds(served: Served) -> None:
    r = await served.http.post("/interpolate", json={"seed_a": 7, "seed_b": 9, "steps": 4, "format": "json"})
    frames = r.json()["frames"]
    assert frames[0]["t"] == 0.0 and frames[-1]["t"] == 1.0 and len(frames) == 4
    gen = (await served.http.post("/generate", json={"seeds": [7, 9]}, params={"format": "json"})).json()["images"]
    for frame, ref in ((frames[0], gen[0]), (frames[-1], gen[1])):
        assert np.array_equal(
            np.asarray(image(base64.b64decode(frame["png"]))), np.asarray(image(base64.b64decode(ref["png"])))
        )


ARITH = {
    "terms": [
        {"name": "smiling woman", "weight": 1, "seeds": [11, 12, 13]},
        {"name": "neutral woman", "weight": -1, "seeds": [21, 22, 23]},
        {"name": "neutral man", "weight": 1, "latents": [[0.1] * TINY.nz, [-0.2] * TINY.nz]},
    ],
    "neighbours": 5,
}


async def test_arithmetic_grid_is_the_papers_layout(served: Served) -> None:
    r = await served.http.post("/arithmetic", json=ARITH)
    assert r.status_code == 200
    # rows: 3 exemplar rows, the means row, the result row (result + 5 neighbours = 6 columns)
    assert image(r.content).size == (grid_side(6), grid_side(5))


async def test_arithmetic_json(served: Served) -> None:
    r = await served.http.post("/arithmetic", json=ARITH | {"format": "json"})
    body = r.json()
    assert [len(t["exemplars"]) for t in body["terms"]] == [3, 3, 2]
    assert len(body["neighbours"]) == 5 and image(base64.b64decode(body["result"])).size == (SIDE, SIDE)
    again = (await served.http.post("/arithmetic", json=ARITH | {"format": "json"})).json()
    assert again == body  # the neighbours' jitter is seeded


async def test_model_and_metrics(served: Served) -> None:
    model = (await served.http.get("/v1/model")).json()
    assert model["config"] == TINY.to_dict() and model["device"] == "cpu" and model["dtype"] == "float32"
    assert model["provenance"]["dataset"] == "synthetic"
    assert model["file"] == "tiny-faces-32.safetensors" and "/" not in model["file"]  # no server paths
    assert model["max_interpolation_steps"] == 32
    await served.http.post("/generate", params={"n": 2})
    text = (await served.http.get("/metrics")).text
    for name in (
        "dcgan_images_generated_total",
        "dcgan_batch_images_bucket",
        "dcgan_batch_requests_bucket",
        "dcgan_queue_wait_seconds_bucket",
        "dcgan_generator_forward_seconds_bucket",
        "dcgan_queue_depth_images",
        'dcgan_rejections_total{reason="queue_full"}',
        'dcgan_http_requests_total{method="POST",model="tiny-faces-32",route="/generate",status="200"}',
        "dcgan_http_request_duration_seconds_bucket",
    ):
        assert name in text, name
    assert f'model_id="{model["model_id"]}"' in text and 'device="cpu"' in text
    assert served.metric("dcgan_images_generated_total") == 2


async def test_playground_and_docs(served: Served) -> None:
    assert (await served.http.get("/")).headers["content-type"].startswith("text/html")
    spec = (await served.http.get("/openapi.json")).json()
    for path in ("/generate", "/interpolate", "/arithmetic"):
        documented = set(spec["paths"][path]["post"]["responses"])
        assert {"400", "401", "413", "422", "499", "500", "503", "504"} <= documented, path
    assert {"401", "422", "503"} <= set(spec["paths"]["/latents"]["get"]["responses"])


def pixels(b64: str) -> np.ndarray:
    return np.asarray(image(base64.b64decode(b64)))


async def test_arithmetic_result_is_the_mean_arithmetic(served: Served) -> None:
    """Exemplars are their seeds' faces; the result is sum(weight * mean) rendered like any latent."""
    body = (await served.http.post("/arithmetic", json=ARITH | {"format": "json", "neighbours": 0})).json()
    seeds = (await served.http.post("/generate", params={"format": "json"}, json={"seeds": [21, 22, 23]})).json()
    assert [pixels(p).tobytes() for p in body["terms"][1]["exemplars"]] == [
        pixels(i["png"]).tobytes() for i in seeds["images"]
    ]
    z = latents_for_seeds([11, 12, 13], TINY.nz).mean(0) - latents_for_seeds([21, 22, 23], TINY.nz).mean(0)
    z = z + torch.tensor([[0.1] * TINY.nz, [-0.2] * TINY.nz]).mean(0)
    ref = await served.http.post("/generate", params={"format": "json"}, json={"latents": [z.tolist()]})
    assert np.array_equal(pixels(body["result"]), pixels(ref.json()["images"][0]["png"]))
    assert body["neighbours"] == []
