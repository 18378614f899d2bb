"""The interactive documentation — Swagger UI at ``/docs``, ReDoc at ``/redoc`` — served entirely from this
process: the scripts, the stylesheet and the icon come from the ``fastapi-offline`` package (its ``static``
directory: Swagger UI's ``swagger-ui-bundle.js``/``swagger-ui.css`` and ReDoc's ``redoc.standalone.js``, under
their own licences, Apache-2.0 and MIT), mounted at :data:`ASSETS_PATH`. Nothing is loaded from a CDN or a font
service, so the pages work on an intranet machine without internet access (tests/pages/test_docs_offline.py).

Each page sets its own ``Content-Security-Policy`` (which :mod:`api.headers` keeps): scripts and styles from this
origin only, the page's inline script by its SHA-256 (no ``'unsafe-inline'`` script), and no other host."""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

__all__ = ["ASSETS_DIR", "ASSETS_PATH", "install_docs", "offline_docs_csp"]

#: Where the documentation's scripts and stylesheet are served (under ``/docs``: unaudited, like the pages).
ASSETS_PATH = "/docs/assets"

#: The directory of the installed ``fastapi-offline`` package that holds the Swagger UI and ReDoc bundles.
ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))

_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)

#: Swagger UI's own settings on top of FastAPI's defaults: no badge from the public validator service.
_SWAGGER_PARAMETERS = {"validatorUrl": None}


def offline_docs_csp(html: bytes) -> str:
    """The policy of a documentation page: everything from this origin, its inline scripts by SHA-256, inline
    styles (both bundles style their elements inline), images also as ``data:`` URLs, ReDoc's search worker as a
    ``blob:``; no other host."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode("ascii") + "'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'none'; script-src 'self' {hashes}".rstrip()
        + "; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; connect-src 'self'"
        + "; worker-src blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


def _with_policy(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = offline_docs_csp(bytes(page.body))
    return page


def install_docs(app: FastAPI) -> None:
    """Mount the bundles and add ``/docs``, ``/docs/oauth2-redirect`` and ``/redoc`` to ``app`` (created with
    ``docs_url=None, redoc_url=None``)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _with_policy(
            get_swagger_ui_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} — Swagger UI",
                oauth2_redirect_url=redirect_url,
                swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
                swagger_ui_parameters=_SWAGGER_PARAMETERS,
            )
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return _with_policy(get_swagger_ui_oauth2_redirect_html())

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _with_policy(
            get_redoc_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} — ReDoc",
                redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
                with_google_fonts=False,
            )
        )
