"""Chromium decodes our PNGs to the pixels we encoded: the fpng path (RGB) and the ISA-L writer (greyscale),
drawn onto a canvas and read back with getImageData (no colour management: our PNGs carry no colour chunks)."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from playwright.sync_api import sync_playwright

from app.compute import encoding
from tests.app.test_playground import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import require

pytestmark = pytest.mark.slow

DECODE = """async (src) => {
  const img = new Image();
  img.src = src;
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const ctx = canvas.getContext("2d", {colorSpace: "srgb"});
  ctx.drawImage(img, 0, 0);
  return Array.from(ctx.getImageData(0, 0, canvas.width, canvas.height).data);
}"""


def test_chromium_decodes_the_pixels_we_encoded() -> None:
    require(CHROMIUM.exists(), f"needs Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    rng = np.random.default_rng(0)
    images = {
        "rgb": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
        "rgb grid": rng.integers(0, 256, (266, 266, 3), dtype=np.uint8),
        "grey": rng.integers(0, 256, (33, 17, 1), dtype=np.uint8),
    }
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            for name, pixels in images.items():
                data = encoding.png(pixels, {"dcgan:seed": "1"})
                src = "data:image/png;base64," + base64.b64encode(data).decode()
                h, w, _ = pixels.shape
                rgba = np.array(page.evaluate(DECODE, src), dtype=np.uint8).reshape(h, w, 4)
                assert (rgba[..., 3] == 255).all(), name
                assert np.array_equal(rgba[..., :3], np.broadcast_to(pixels, (h, w, 3))), name
        finally:
            browser.close()
