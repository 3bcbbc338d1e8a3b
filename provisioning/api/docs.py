"""`/docs`: Swagger UI over `/openapi.json`, every asset served from our own origin.

FastAPI's default page loads Swagger UI from a CDN and renders blank on a machine without
internet (a device network, an air-gapped site). The assets are vendored at development
time by `scripts/vendor` into `provisioning/static/vendor/` and served under `/static/`.
The validator badge, which would ask validator.swagger.io about our document, is off.
ReDoc is not served: one documentation page is enough.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent.parent / "static"
SWAGGER = "/static/vendor/swagger-ui-dist"


def install(app: FastAPI) -> None:
    """Serve `/static/` and `/docs`; the app must be built with `docs_url=None`."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title}: documentation",
            swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},
        )
