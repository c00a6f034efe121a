"""``/docs`` with Swagger UI served from the package, not a CDN (many users' networks are offline).

FastAPI's default ``/docs`` page loads Swagger UI's JavaScript and CSS from jsdelivr, which leaves a
blank page without internet. ``swagger-ui-bundle`` ships those files on PyPI; we mount them.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from app.web.deps import SECURITY_SCHEMES

ASSETS = "/docs-assets"


def install(app: FastAPI) -> None:
    """Serve ``/docs`` from bundled assets (build the app with ``docs_url=None`` first), and declare the API-key
    schemes that ``app.web.deps.serving_service`` checks."""
    generate_schema = app.openapi  # FastAPI's: builds the schema once and keeps it in app.openapi_schema

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = generate_schema()
        if fresh:
            schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

    app.mount(ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )
