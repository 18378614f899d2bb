"""The pages' static files (``/static``) and icon (``/favicon.ico``), cached by browsers (docs/pages.md, "Weight").

- A page names its stylesheet and scripts by :func:`static_url` — ``/static/site.css?v=<SM3 prefix of the
  file>`` — so a changed file gets a new URL: a versioned request is cached for a year (``immutable``); an
  unversioned one for an hour. Both keep Starlette's ``ETag`` and ``Last-Modified``, so a browser revalidates
  with ``If-None-Match`` and gets a 304.
- ``/favicon.ico`` is the icon browsers ask for unprompted (a 404 before); pages also link the SVG icon.

Neither is audited (:data:`api.security._UNAUDITED_PREFIXES`): they hold no data.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from api.pages.common import PageRoute
from certstore.crypto.sm3 import sm3_hex

__all__ = ["STATIC_DIR", "CachedStaticFiles", "icon_router", "static_url"]

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

#: A versioned URL's file never changes: cached for a year without revalidation.
VERSIONED_CACHE = "public, max-age=31536000, immutable"
#: An unversioned URL (or one whose version is stale): an hour, then revalidated by ETag.
UNVERSIONED_CACHE = "public, max-age=3600"


@cache
def _version(name: str, mtime_ns: int) -> str:
    return sm3_hex((STATIC_DIR / name).read_bytes())[:12]


def static_url(name: str) -> str:
    """``/static/<name>?v=<version>``: the URL that changes when the file does (for templates)."""
    path = STATIC_DIR / name
    return f"/static/{name}?v={_version(name, path.stat().st_mtime_ns)}"


class CachedStaticFiles(StaticFiles):
    """:class:`StaticFiles` with ``Cache-Control``: long for the current versioned URL, an hour otherwise."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            name = Path(full_path).resolve().relative_to(STATIC_DIR).as_posix()
            current = f"v={_version(name, stat_result.st_mtime_ns)}"
        except (ValueError, OSError):
            current = None
        versioned = current is not None and current in query.split("&")
        response.headers["Cache-Control"] = VERSIONED_CACHE if versioned else UNVERSIONED_CACHE
        return response


icon_router = APIRouter(route_class=PageRoute, include_in_schema=False)


@icon_router.get("/favicon.ico")
def favicon() -> FileResponse:
    """The site icon (the SVG one, ``/static/icon.svg``, is what pages link)."""
    return FileResponse(
        STATIC_DIR / "favicon.ico",
        media_type="image/vnd.microsoft.icon",
        headers={"Cache-Control": "public, max-age=86400"},
    )
