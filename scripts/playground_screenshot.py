"""Screenshot of the playground for the README: `python scripts/playground_screenshot.py [--checkpoint P]`.

Starts `python -m app` on 127.0.0.1 with the checkpoint, drives Debian's Chromium through a grid, an
interpolation, an arithmetic result and an edit, and writes docs/playground.png. Fixed seeds give the same
faces every time (only the GIF frame caught varies). Needs /usr/bin/chromium; downloads nothing.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from PIL import Image
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def start_server(checkpoint: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DCGAN_CHECKPOINT": str(checkpoint), "DCGAN_HOST": "127.0.0.1", "DCGAN_PORT": str(port)}
    env["DCGAN_DEVICE"] = "cpu"  # CPU rendering is bit-exact: the same faces on every machine
    env.pop("DCGAN_API_KEY", None)
    proc = subprocess.Popen([sys.executable, "-m", "app"], env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1.0).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("server did not become ready in 60 s")


def wait_images(page: Page, selector: str) -> None:
    page.wait_for_function(
        """(sel) => { const imgs = [...document.querySelectorAll(sel)];
             return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0); }""",
        arg=selector,
        timeout=60_000,
    )


def walk(page: Page, base: str, args: argparse.Namespace) -> None:
    """Grid -> two selected faces interpolated -> A - B + C from picked exemplars."""
    page.goto(base + "/")
    page.fill("#gen-n", str(args.n))
    page.fill("#gen-seed", str(args.seed))
    page.click("#generate-form button[type=submit]")
    wait_images(page, "#grid .face img")
    faces = page.locator("#grid .face")
    for i in args.pair:
        faces.nth(i).click()
    page.click("#interp-use-selected")
    page.fill("#interp-steps", "8")
    page.click("#interp-form button[type=submit]")
    wait_images(page, "#interp-out img")
    page.click("#selection-clear")
    terms = page.locator("#arith-terms .term")
    for t, picks in enumerate(args.terms):
        for i in picks:
            faces.nth(i).click()
        terms.nth(t).locator(".term-add").click()
    page.fill("#arith-neighbours", "5")
    page.click("#arith-form button[type=submit]")
    wait_images(page, "#arith-out img")
    faces.nth(args.edit).click()  # Edit: the face with +2 sigma of "Smiling" and +1 of "Blond_Hair"
    page.click("#edit-use-selected")
    wait_images(page, "#edit-result")
    before = page.get_attribute("#edit-result", "src")
    for name, value in args.sliders:
        page.locator(f'#edit-sliders input[data-direction="{name}"]').fill(value)
    page.wait_for_function("(src) => document.querySelector('#edit-result').src !== src", arg=before, timeout=60_000)
    wait_images(page, "#edit-result")
    faces.nth(args.edit).click()
    for i in args.pair:  # show the selection state in the picture too
        faces.nth(i).click()
    page.evaluate("document.activeElement.blur()")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "demo-faces-64.safetensors")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "playground.png")
    parser.add_argument("--seed", type=int, default=0, help="first seed of the grid (default: %(default)s)")
    parser.add_argument("--n", type=int, default=48, help="faces in the grid (default: %(default)s)")
    args = parser.parse_args()
    args.pair = (7, 36)
    # smiling women, neutral women, neutral men: picked by eye from the demo's seeds 0-47
    args.terms = [(8, 26, 42), (27, 36, 37), (13, 32, 28)]
    args.edit, args.sliders = 27, [("Smiling", "2"), ("Blond_Hair", "1")]
    proc, base = start_server(args.checkpoint)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            walk(page, base, args)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            shot = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    shot.save(args.out, optimize=True)  # colour faces: a 256-colour palette would band them
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
