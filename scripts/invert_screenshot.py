"""Screenshot of the playground's "Your face" for docs/inversion: `python scripts/invert_screenshot.py PHOTO PHOTO`.

Starts `python -m app` with the checkpoint (its encoder beside it), uploads the first photo with the file
picker and the second by drag-and-drop, edits the first (Smiling +2), interpolates between them, and
writes the "Your face" and "Edit" sections as one PNG (the two sections between them hidden), by default
docs/inversion/playground.png. Needs /usr/bin/chromium; downloads nothing.
"""

from __future__ import annotations

import argparse
import base64
import io
import sys
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from playground_screenshot import CHROMIUM_ARGS, ROOT, start_server, wait_images


def drop(page: Page, path: Path) -> None:
    payload = base64.b64encode(path.read_bytes()).decode()
    page.evaluate(
        """([name, b64]) => {
             const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
             const dt = new DataTransfer();
             dt.items.add(new File([bytes], name, { type: "image/jpeg" }));
             const zone = document.querySelector("#upload-drop");
             for (const type of ["dragenter", "dragover", "drop"]) {
               zone.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
             }
           }""",
        [path.name, payload],
    )


def walk(page: Page, base: str, photos: list[Path], sliders: list[tuple[str, str]]) -> None:
    page.goto(base + "/")
    page.wait_for_selector("#edit-sliders input", state="attached")
    with page.expect_file_chooser() as chooser, page.expect_response(lambda r: "/invert" in r.url, timeout=120_000):
        page.click("#upload-pick")
        chooser.value.set_files(str(photos[0]))
    with page.expect_response(lambda r: "/invert" in r.url, timeout=120_000):
        drop(page, photos[1])
    wait_images(page, "#upload-list img")
    with page.expect_response(lambda r: r.url.endswith("/interpolate"), timeout=60_000):
        page.click("#upload-interp")
    wait_images(page, "#upload-interp-out img")
    page.locator("#upload-list .upload", has_text=photos[0].name).locator(".upload-edit").click()
    wait_images(page, "#edit-result")
    before = page.get_attribute("#edit-result", "src")
    for name, value in sliders:
        page.locator(f'#edit-sliders input[data-direction="{name}"]').fill(value)
    page.wait_for_function("(src) => document.querySelector('#edit-result').src !== src", arg=before, timeout=60_000)
    wait_images(page, "#edit-result")
    page.evaluate("document.activeElement.blur()")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path, nargs=2, help="two face photos (e.g. held-out CelebA 009500.jpg)")
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "demo-faces-64.safetensors")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "inversion" / "playground.png")
    args = parser.parse_args()
    proc, base = start_server(args.checkpoint)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            walk(page, base, args.photos, [("Smiling", "2")])
            page.evaluate("for (const id of ['interpolate', 'arithmetic']) document.getElementById(id).hidden = true")
            page.evaluate("window.scrollTo({top: 0, behavior: 'instant'})")  # boxes are relative to the viewport
            page.wait_for_timeout(300)
            top = page.locator("#upload").bounding_box()
            bottom = page.locator("#edit").bounding_box()
            assert top is not None and bottom is not None
            clip = {"x": 0, "y": top["y"] - 8, "width": 1100, "height": bottom["y"] + bottom["height"] - top["y"] + 16}
            shot = Image.open(io.BytesIO(page.screenshot(full_page=True, clip=clip))).convert("RGB")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    shot.save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
