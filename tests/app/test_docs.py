"""/docs works offline: the page and its assets come from the app, never from a CDN."""

from __future__ import annotations

import re

import pytest

from tests.app.conftest import Served

pytestmark = pytest.mark.anyio


async def test_docs_page_and_assets_are_served_locally(served: Served) -> None:
    page = await served.http.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text) + re.findall(r"url: '([^']+)'", page.text)
    assert urls and not [u for u in urls if u.startswith(("http:", "https:", "//"))]
    for url in urls:
        response = await served.http.get(url)
        assert response.status_code == 200, url
        assert len(response.content) > 0
    assert (await served.http.get("/openapi.json")).json()["info"]["title"] == "dcgan-faces"
