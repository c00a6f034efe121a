"""The playground's "Your face" in a real browser (Debian's Chromium, Playwright) against `python -m app`.

A held-out CelebA photo (009500.jpg, from ../shared) goes in through the file picker and another
(009600.jpg) by drag-and-drop; each shows its aligned crop beside its reconstruction, as decoded PNGs
of the model's size, with PSNR/SSIM. "Edit this face" puts the upload under the edit sliders (strength
0 is exactly its reconstruction; a slider changes it), "Interpolate" runs between the two uploads, and
a photo without a face is answered in plain words. Screenshots go to test-artifacts/playground/.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from models.config import DCGANConfig
from tests.app import test_playground as playground
from tests.app.test_playground import ARTIFACTS, PageWatch, _wait_images
from tests.conftest import celeba_photos, tiny_encoder, tiny_export
from tests.live_server import start_server

IMAGE_SIZE = 32
_chromium, browser, page = playground._chromium, playground.browser, playground.page  # the same fixtures
PHOTOS = ["009500.jpg", "009600.jpg"]  # held out: neither G nor E (nor the template) saw them


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return celeba_photos(PHOTOS, tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m app` with a tiny generator and a tiny encoder beside it; 4 faithful steps by default."""
    tmp = tmp_path_factory.mktemp("playground-upload")
    export = tiny_export(tmp / "tiny.safetensors", DCGANConfig(image_size=IMAGE_SIZE, ngf=8), dataset="fixture")
    tiny_encoder(export)
    app = start_server(export, tmp / "server.log", invert_default_steps="4", torch_threads="1", invert_nice="0")
    try:
        app.wait_ready()
        yield app.base
    finally:
        app.stop(timeout=15)


def _data_png(src: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:40]
    return Image.open(io.BytesIO(base64.b64decode(src[len(prefix) :])))


def _drop(tab: Page, path: Path, selector: str) -> None:
    """Drag-and-drop a file onto ``selector`` as a user would (a DataTransfer holding a File)."""
    payload = base64.b64encode(path.read_bytes()).decode()
    tab.evaluate(
        """([sel, name, b64]) => {
             const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
             const dt = new DataTransfer();
             dt.items.add(new File([bytes], name, { type: "image/jpeg" }));
             const zone = document.querySelector(sel);
             for (const type of ["dragenter", "dragover", "drop"]) {
               zone.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
             }
           }""",
        [selector, path.name, payload],
    )


def test_upload_edit_interpolate_and_no_face(
    server: str,
    page: Page,
    photos: dict[str, Path],
    tmp_path: Path,
) -> None:
    watch = PageWatch(page, server)
    page.goto(server + "/")
    expect(page.locator("#edit-sliders input").first).to_be_attached()

    # 1. the file picker
    with page.expect_file_chooser() as chooser:
        page.click("#upload-pick")
    with page.expect_response(lambda r: "/invert" in r.url) as answer:
        chooser.value.set_files(str(photos["009500.jpg"]))
    assert answer.value.status == 200
    result = answer.value.json()
    card = page.locator("#upload-list .upload").first
    expect(card).to_contain_text("009500.jpg")
    sizes = _wait_images(page, "#upload-list .upload img", 2)
    assert sizes == [{"w": IMAGE_SIZE, "h": IMAGE_SIZE}] * 2
    shown = card.locator(".reconstruction img").get_attribute("src")
    assert shown is not None and _data_png(shown).size == (IMAGE_SIZE, IMAGE_SIZE)
    assert shown.endswith(result["reconstruction"])
    expect(card.locator(".fidelity")).to_contain_text(f"PSNR {result['psnr']:.1f} dB")
    expect(card.locator(".fidelity")).to_contain_text("SSIM")
    expect(card).to_contain_text("One face found")

    # 2. drag-and-drop, fast mode
    page.select_option("#upload-mode", "fast")
    with page.expect_response(lambda r: "/invert" in r.url) as second:
        _drop(page, photos["009600.jpg"], "#upload-drop")
    assert second.value.status == 200 and second.value.json()["mode"] == "fast"
    _wait_images(page, "#upload-list .upload img", 4)
    expect(page.locator("#upload-list .upload").first).to_contain_text("009600.jpg")
    expect(page.locator("#upload-interp")).to_be_enabled()

    # 3. the edit sliders act on the first upload: strength 0 is its reconstruction, a slider moves it
    with page.expect_response(lambda r: r.url.endswith("/edit")) as plain:
        page.locator("#upload-list .upload", has_text="009500.jpg").locator(".upload-edit").click()
    assert plain.value.status == 200
    expect(page.locator("#edit-source")).to_contain_text("009500.jpg")
    body = plain.value.request.post_data_json
    assert body["latent"] == result["latent"] and "seed" not in body
    _wait_images(page, "#edit-result", 1)
    plain_src = page.locator("#edit-result").get_attribute("src")
    assert plain_src is not None
    assert np.array_equal(np.asarray(_data_png(plain_src).convert("RGB")), np.asarray(_data_png(shown).convert("RGB")))
    with page.expect_response(lambda r: r.url.endswith("/edit")) as moved:
        page.locator("#edit-sliders input").first.fill("2")
    assert moved.value.status == 200
    page.wait_for_function("(src) => document.querySelector('#edit-result').src !== src", arg=plain_src)

    # 4. interpolate between the two uploads
    with page.expect_response(lambda r: r.url.endswith("/interpolate")) as interp:
        page.click("#upload-interp")
    assert interp.value.status == 200
    assert interp.value.request.post_data_json["latent_b"] == second.value.json()["latent"]
    _wait_images(page, "#upload-interp-out img", 2)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "upload-desktop.png"), full_page=True)

    # 5. a photo without a face: the error in plain words, no new card
    blank = tmp_path / "wall.png"
    Image.new("RGB", (160, 200), (200, 190, 170)).save(blank)
    page.select_option("#upload-mode", "faithful")
    with page.expect_response(lambda r: "/invert" in r.url) as refused:
        page.set_input_files("#upload-file", str(blank))
    assert refused.value.status == 422
    error = page.locator("#upload .error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("could not use this photo")
    expect(error).to_contain_text("Photo: no face found in the photo")
    assert page.locator("#upload-list .upload").count() == 2
    page.screenshot(path=str(ARTIFACTS / "upload-no-face.png"), full_page=True)
    assert all("422" in e for e in watch.errors), watch.errors  # Chromium logs the refused fetch only
    watch.errors.clear()
    watch.assert_clean()
