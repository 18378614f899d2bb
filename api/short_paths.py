"""The QR code's short path: ``/v/<short code>`` (and ``/api/v1/public/certificates/<short code>/status``) are
served as the same request for the certificate identifier the short code names
(:func:`certstore.services.short_paths.resolve_short_code`), so the page and the route by identifier answer both
and the audit middleware records the identifier. A code that names no stored version is passed on unchanged and
answered like an unknown identifier (404)."""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from certstore.identifiers import SHORT_CODE_LENGTH

__all__ = ["ShortPathMiddleware"]

_SHORT = re.compile(rf"^(/v/|/api/v1/public/certificates/)([a-z2-7]{{{SHORT_CODE_LENGTH}}})(/status)?$")


class ShortPathMiddleware:
    """ASGI middleware rewriting a GET/HEAD short path to the identifier path before routing; ``resolve`` maps a
    short code to an identifier or None (it reads the database: it runs in the thread pool)."""

    def __init__(self, app: ASGIApp, resolve: Callable[[str], str | None]) -> None:
        self.app = app
        self.resolve = resolve

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            match = _SHORT.match(scope["path"])
            if match is not None and (match.group(1) == "/v/") == (match.group(3) is None):
                identifier = await run_in_threadpool(self.resolve, match.group(2))
                if identifier is not None:
                    path = f"{match.group(1)}{identifier}{match.group(3) or ''}"
                    scope = {**scope, "path": path, "raw_path": path.encode("ascii")}
        await self.app(scope, receive, send)
