"""Security headers on every response the application sends: API JSON, problems, ``/openapi.json``, ``/docs``,
static files, the pages and the answers of the middleware itself (429, 413, 401 …).

- ``X-Content-Type-Options: nosniff`` — a browser never runs a JSON answer or an uploaded file's echo as HTML or
  script;
- ``X-Frame-Options: DENY`` and ``frame-ancestors 'none'`` — nothing is framed (click-jacking);
- ``Referrer-Policy: no-referrer`` — no URL of this service leaks to another site;
- ``Content-Security-Policy`` — for everything but HTML: ``default-src 'none'`` (an answer loads nothing); for the
  interactive documentation (``/docs``, ``/redoc``) a policy that admits exactly what FastAPI's pages load (the
  Swagger UI / ReDoc bundles from cdn.jsdelivr.net) and, by hash, their one inline script — no
  ``'unsafe-inline'`` script. The web pages set their own, stricter policy (``api/pages/common.py``), which is
  kept: a header the application already set is never replaced.

:class:`SecurityHeadersMiddleware` is pure ASGI (nothing is buffered but the small documentation pages, whose
inline scripts are hashed). :data:`API_HEADERS` is also added by :func:`api.problems.problem_response` itself, so
the 500 answers sent by Starlette's outermost error middleware — outside every user middleware — carry them too.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["API_CSP", "API_HEADERS", "SecurityHeadersMiddleware", "docs_csp"]

#: The policy of every non-HTML answer: it loads nothing and may not be framed.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

#: The headers every answer carries (unless the route set its own value of one of them).
API_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": API_CSP,
}

#: The interactive documentation pages FastAPI serves (HTML with an inline script).
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})

_CDN = "https://cdn.jsdelivr.net"
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)
_DOCS_LIMIT = 256 * 1024  # the documentation pages are a few KiB; anything bigger is sent with the API policy


def docs_csp(html: bytes) -> str:
    """The policy of a documentation page: its CDN bundles, its inline scripts by SHA-256, nothing else."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode("ascii") + "'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'none'; script-src {_CDN} {hashes}".rstrip()
        + f"; style-src {_CDN} https://fonts.googleapis.com 'unsafe-inline'; font-src https://fonts.gstatic.com"
        + f"; img-src 'self' data: {_CDN} https://fastapi.tiangolo.com; connect-src 'self'; worker-src blob:"
        + "; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


def _with_headers(message: Message, extra: dict[str, str]) -> Message:
    headers = list(message.get("headers", []))
    present = {name.lower() for name, _value in headers}
    for name, value in extra.items():
        key = name.lower().encode("latin-1")
        if key not in present:
            headers.append((key, value.encode("latin-1")))
    return {**message, "headers": headers}


class SecurityHeadersMiddleware:
    """ASGI middleware adding :data:`API_HEADERS` (and on the documentation pages :func:`docs_csp`) to every HTTP
    response start, keeping any of them the application set itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in DOCS_PATHS:
            await self.app(scope, receive, _DocsPage(send))
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = _with_headers(message, API_HEADERS)
            await send(message)

        await self.app(scope, receive, with_headers)


class _DocsPage:
    """A ``send`` that holds a documentation page's start and body until the body is complete, to hash its inline
    scripts into the policy."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.start: Message | None = None
        self.body: list[bytes] = []
        self.size = 0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.start = message
            return
        if self.start is None or message["type"] != "http.response.body":
            await self.send(message)
            return
        self.body.append(message.get("body", b""))
        self.size += len(self.body[-1])
        if message.get("more_body", False) and self.size <= _DOCS_LIMIT:
            return
        body = b"".join(self.body)
        policy = docs_csp(body) if self.size <= _DOCS_LIMIT else API_CSP
        start, self.start, self.body = self.start, None, []
        await self.send(_with_headers(start, {**API_HEADERS, "Content-Security-Policy": policy}))
        await self.send({**message, "body": body})
