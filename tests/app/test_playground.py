"""The playground in a real browser: Debian's Chromium, driven by Playwright, against `python -m app`.

One server (tiny fixture checkpoint, API key set) and one browser page walk the whole page the way a
user would: the key prompt, a grid, a selection, an interpolation and an arithmetic result. Images
are checked as decoded PNGs of the model's size, seeds and bytes against the API called directly,
and the console must stay clean. Screenshots land in test-artifacts/playground/ (desktop and 375 px).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from models.config import DCGANConfig
from tests.conftest import require, tiny_export
from tests.live_server import start_server

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "playground"
API_KEY = "playground-test-key"
IMAGE_SIZE = 32
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

expect.set_options(timeout=15_000)  # the 5 s default is tight for a loaded 2-core CI machine


@pytest.fixture(scope="module", autouse=True)
def _chromium() -> None:
    """.ci/run installs Chromium at this same path; without it: skip here, fail under CI=true."""
    require(CHROMIUM.exists(), f"needs Debian's Chromium at {CHROMIUM} (apt-get install chromium)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m app` on 127.0.0.1 serving a tiny random generator, with an API key; yields its base URL."""
    tmp = tmp_path_factory.mktemp("playground")
    checkpoint = tiny_export(tmp / "tiny.safetensors", DCGANConfig(image_size=IMAGE_SIZE, ngf=8), dataset="fixture")
    settings = {"api_key": API_KEY, "max_interpolation_steps": "24"}  # the steps field's max comes from /v1/model
    app = start_server(checkpoint, tmp / "server.log", **settings)
    try:
        app.wait_ready()
        yield app.base
    finally:
        app.stop(timeout=15)


class PageWatch:
    """Everything on a page that should not happen: console errors, uncaught exceptions, off-server requests."""

    def __init__(self, page: Page, base: str) -> None:
        self.errors: list[str] = []
        self.external: list[str] = []
        page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("request", lambda req: self._request(req.url, base))

    def _request(self, url: str, base: str) -> None:
        if not url.startswith((base + "/", "data:", "blob:")):
            self.external.append(url)

    def assert_clean(self) -> None:
        assert self.errors == [], f"browser console errors: {self.errors}"
        assert self.external == [], f"requests that left the server: {self.external}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


def _wait_images(page: Page, selector: str, count: int) -> list[dict[str, int]]:
    """Wait until ``count`` images match ``selector`` and are decoded; return their natural sizes."""
    page.wait_for_function(
        """([sel, n]) => { const imgs = [...document.querySelectorAll(sel)];
             return imgs.length === n && imgs.every((i) => i.complete && i.naturalWidth > 0); }""",
        arg=[selector, count],
        timeout=15_000,
    )
    sizes: list[dict[str, int]] = page.eval_on_selector_all(
        selector, "imgs => imgs.map(i => ({w: i.naturalWidth, h: i.naturalHeight}))"
    )
    return sizes


def _shown_faces(page: Page) -> list[tuple[int, str]]:
    """(seed shown under the face, base64 PNG behind its image) for every face in the grid."""
    rows: list[list[str]] = page.eval_on_selector_all(
        "#grid .face", "bs => bs.map(b => [b.querySelector('.seed').textContent, b.querySelector('img').src])"
    )
    prefix = "data:image/png;base64,"
    assert all(src.startswith(prefix) for _, src in rows)
    return [(int(seed), src[len(prefix) :]) for seed, src in rows]


def _api_faces(base: str, **params: object) -> list[tuple[int, str]]:
    res = httpx.post(f"{base}/generate", params={**params, "format": "json"}, headers={"X-API-Key": API_KEY})
    res.raise_for_status()
    return [(item["seed"], item["png"]) for item in res.json()["images"]]


def _submit_generate(page: Page) -> None:
    page.click("#generate-form button[type=submit]")
    page.wait_for_selector(
        '#grid[aria-busy="false"]', state="attached"
    )  # set to "true" synchronously by the submit handler


def _enter_api_key(page: Page, watch: PageWatch) -> None:
    """Without a key the server answers 401: the page says so in words and opens the key field."""
    _submit_generate(page)
    expect(page.locator("#generate .error")).to_contain_text("needs an API key")
    expect(page.locator("#key-panel")).to_have_attribute("open", "")
    assert watch.errors and all("401" in e for e in watch.errors), watch.errors  # Chromium logs refused fetches
    watch.errors.clear()
    page.fill("#api-key", API_KEY)
    page.press("#api-key", "Enter")


def _generate_grids(page: Page, base: str) -> None:
    """A random grid shows the seeds the server drew; a seeded grid is byte-identical to the API's answer."""
    page.fill("#gen-n", "6")
    with page.expect_response(lambda r: "/generate" in r.url) as answer:
        _submit_generate(page)
    drawn = [(item["seed"], item["png"]) for item in answer.value.json()["images"]]
    assert _wait_images(page, "#grid .face img", 6) == [{"w": IMAGE_SIZE, "h": IMAGE_SIZE}] * 6
    assert _shown_faces(page) == drawn
    expect(page.locator("#generate .error")).to_be_hidden()

    page.fill("#gen-n", "8")
    page.fill("#gen-seed", "1234")
    _submit_generate(page)
    assert _wait_images(page, "#grid .face img", 8) == [{"w": IMAGE_SIZE, "h": IMAGE_SIZE}] * 8
    shown = _shown_faces(page)
    assert [seed for seed, _ in shown] == list(range(1234, 1242))
    assert shown == _api_faces(base, n=8, seed=1234)
    # each face links to its permanent URL, which answers the same bytes (the model picker names the model)
    expect(page.locator("#model-picker option")).to_have_count(1)
    links = page.eval_on_selector_all("#grid li .permalink", "links => links.map(a => a.getAttribute('href'))")
    assert len(links) == 8 and links[0].startswith(f"/v1/models/{page.input_value('#model-picker')}@")
    face = httpx.get(base + links[0], headers={"X-API-Key": API_KEY})
    assert (
        face.headers["cache-control"].endswith("immutable") and base64.b64encode(face.content).decode() == shown[0][1]
    )


def _select(page: Page, *indices: int) -> None:
    """Select grid faces alternately by mouse, Space and Enter (they are real buttons)."""
    faces = page.locator("#grid .face")
    for k, i in enumerate(indices):
        face = faces.nth(i)
        if k % 3 == 0:
            face.click()
        else:
            face.focus()
            page.keyboard.press("Space" if k % 3 == 1 else "Enter")
        expect(face).to_have_attribute("aria-pressed", "true")


def _blob_base64(page: Page, selector: str) -> str:
    """The bytes behind a download link's blob: URL, as base64."""
    href = page.get_attribute(selector, "href")
    assert href and href.startswith("blob:")
    data: str = page.evaluate(
        """async (u) => { const b = new Uint8Array(await (await fetch(u)).arrayBuffer());
             let s = ""; for (const x of b) s += String.fromCharCode(x); return btoa(s); }""",
        href,
    )
    return data


def _interpolate(page: Page, base: str) -> None:
    _select(page, 0, 3)
    page.click("#interp-use-selected")
    expect(page.locator("#interp-a")).to_have_value("1234")
    expect(page.locator("#interp-b")).to_have_value("1237")
    expect(page.locator("#interp-steps")).to_have_attribute("max", "24")
    page.fill("#interp-steps", "6")
    page.check("#interp-form input[value=lerp]")
    page.click("#interp-form button[type=submit]")
    (gif,) = _wait_images(page, "#interp-gif", 1)
    (strip,) = _wait_images(page, "#interp-strip", 1)
    assert gif == {"w": IMAGE_SIZE, "h": IMAGE_SIZE}
    assert 6 * IMAGE_SIZE <= strip["w"] < 7 * IMAGE_SIZE and IMAGE_SIZE <= strip["h"] < 2 * IMAGE_SIZE
    body = {"seed_a": 1234, "seed_b": 1237, "steps": 6, "method": "lerp", "format": "strip"}
    api = httpx.post(f"{base}/interpolate", json=body, headers={"X-API-Key": API_KEY})
    assert _blob_base64(page, "#interp-strip-dl") == base64.b64encode(api.content).decode()
    assert _blob_base64(page, "#interp-gif-dl")[:8] == base64.b64encode(b"GIF89a").decode()


def _arithmetic(page: Page) -> None:
    """A − B + C with 3, 2 and 2 exemplars picked from the grid, and 3 neighbours."""
    terms = page.locator("#arith-terms .term")
    expect(terms).to_have_count(3)
    for t, picks in enumerate([(5,), (1, 2), (4, 6)]):  # faces 0 and 3 are still selected from the interpolation
        _select(page, *picks)
        terms.nth(t).locator(".term-add").click()
        expect(page.locator("#grid .face[aria-pressed=true]")).to_have_count(0)
    expect(terms.nth(0).locator(".term-seeds")).to_have_value("1234, 1237, 1239")
    page.fill("#arith-neighbours", "3")
    page.click("#arith-form button[type=submit]")
    rows = page.locator("#arith-rows .arith-row")
    expect(rows).to_have_count(4)  # three exemplar rows with their means, then the result row
    sizes = _wait_images(page, "#arith-rows img", (3 + 1) + (2 + 1) + (2 + 1) + (1 + 3))
    assert sizes == [{"w": IMAGE_SIZE, "h": IMAGE_SIZE}] * len(sizes)
    page.click("#arith-figure-panel summary")  # the paper-style figure is folded away by default
    _wait_images(page, "#arith-figure", 1)
    assert _blob_base64(page, "#arith-dl")[:8] == base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()[:8]


def test_playground_walkthrough(server: str, page: Page) -> None:
    watch = PageWatch(page, server)
    page.goto(server + "/")
    expect(page.locator("h1")).to_have_text("DCGAN faces")
    _enter_api_key(page, watch)
    _generate_grids(page, server)
    _interpolate(page, server)
    _arithmetic(page)
    _edit(page, server)
    expect(page.locator("#model-info")).to_contain_text(f"{IMAGE_SIZE}×{IMAGE_SIZE}")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "desktop.png"), full_page=True)
    watch.assert_clean()


def test_playground_at_phone_width(server: str, browser: Browser) -> None:
    """At 375 px nothing overflows sideways; the grid, selection and interpolation still work."""
    context = browser.new_context(viewport={"width": 375, "height": 812}, device_scale_factor=2)
    try:
        page = context.new_page()
        watch = PageWatch(page, server)
        page.add_init_script(f"sessionStorage.setItem('dcgan-faces.api-key', '{API_KEY}')")
        page.goto(server + "/")
        page.fill("#gen-seed", "7")
        page.fill("#gen-n", "9")
        _submit_generate(page)
        _wait_images(page, "#grid .face img", 9)
        _select(page, 0, 1)
        page.click("#interp-use-selected")
        page.fill("#interp-steps", "16")  # a strip far wider than the screen scrolls inside its box
        page.click("#interp-form button[type=submit]")
        _wait_images(page, "#interp-out img", 2)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"page is {overflow} px wider than a 375 px screen"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "phone-375.png"), full_page=True)
        watch.assert_clean()
    finally:
        context.close()


def test_playground_explains_api_errors(server: str, page: Page) -> None:
    """A 422 from the server is shown in words naming the field and the term, not as JSON."""
    watch = PageWatch(page, server)
    page.add_init_script(f"sessionStorage.setItem('dcgan-faces.api-key', '{API_KEY}')")
    page.goto(server + "/")
    page.fill("#arith-terms .term:nth-child(1) .term-seeds", ", ".join(str(s) for s in range(9)))  # server caps at 8
    for t in (2, 3):
        page.fill(f"#arith-terms .term:nth-child({t}) .term-seeds", str(t))
    page.click("#arith-form button[type=submit]")
    error = page.locator("#arithmetic .error")
    expect(error).to_contain_text("Exemplar seeds (term A)")
    expect(error).to_contain_text("at most 8")
    expect(page.locator("#arith-out")).to_be_hidden()
    assert watch.errors and all("422" in e for e in watch.errors), watch.errors
    watch.errors.clear()
    watch.assert_clean()


def _edit(page: Page, base: str) -> None:
    """Select a face, move two sliders: the face shown is exactly what POST /edit answers for that request,
    and resetting the sliders gives back the grid's own face, byte for byte."""
    expect(page.locator("#edit-sliders input")).to_have_count(5)  # a fixture without attributes: sefa-0..4
    _select(page, 2)
    page.click("#edit-use-selected")
    expect(page.locator("#edit-seed")).to_have_value("1236")
    _wait_images(page, "#edit-result", 1)
    plain = page.get_attribute("#edit-result", "src")
    assert plain == "data:image/png;base64," + dict(_api_faces(base, n=1, seed=1236))[1236]
    for name, value in (("sefa-0", "2"), ("sefa-2", "-1.5")):
        page.locator(f'#edit-sliders input[data-direction="{name}"]').fill(value)
    expect(page.locator("#edit-result")).not_to_have_attribute("src", plain)
    page.wait_for_function(
        "() => JSON.parse(document.querySelector('#edit-result').dataset.request).direction.length === 2"
    )
    body = json.loads(page.get_attribute("#edit-result", "data-request") or "{}")
    assert body == {
        "seed": 1236,
        "direction": [{"name": "sefa-0", "weight": 2}, {"name": "sefa-2", "weight": -1.5}],
        "strengths": [1],
        "format": "json",
    }
    api = httpx.post(f"{base}/edit", json=body, headers={"X-API-Key": API_KEY}).json()
    assert page.get_attribute("#edit-result", "src") == "data:image/png;base64," + api["frames"][0]["png"]
    page.click("#edit-reset")
    expect(page.locator("#edit-result")).to_have_attribute("src", plain)
