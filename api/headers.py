"""Security headers on every response the application sends: API JSON, problems, ``/openapi.json``, ``/docs``,
static files, the pages and the answers of the middleware itself (429, 413, 401 …).

- ``X-Content-Type-Options: nosniff`` — a browser never runs a JSON answer or an uploaded file's echo as HTML or
  script;
- ``X-Frame-Options: DENY`` and ``frame-ancestors 'none'`` — nothing is framed (click-jacking);
- ``Referrer-Policy: no-referrer`` — no URL of this service leaks to another site;
- ``Content-Security-Policy`` — for everything but HTML: ``default-src 'none'`` (an answer loads nothing). The web
  pages set their own policy (``api/pages/common.py``), and so do the interactive documentation pages
  (``/docs``, ``/redoc``: assets from this server only, their inline script by hash — :mod:`api.docs_pages`);
  a header the application already set is never replaced.

:class:`SecurityHeadersMiddleware` is pure ASGI (nothing is buffered). :data:`API_HEADERS` is also added by :func:`api.problems.problem_response` itself, so
the 500 answers sent by Starlette's outermost error middleware — outside every user middleware — carry them too.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["API_CSP", "API_HEADERS", "SecurityHeadersMiddleware"]

#: The policy of every non-HTML answer: it loads nothing and may not be framed.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

#: The headers every answer carries (unless the route set its own value of one of them).
API_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": API_CSP,
}


def _with_headers(message: Message, extra: dict[str, str]) -> Message:
    headers = list(message.get("headers", []))
    present = {name.lower() for name, _value in headers}
    for name, value in extra.items():
        key = name.lower().encode("latin-1")
        if key not in present:
            headers.append((key, value.encode("latin-1")))
    return {**message, "headers": headers}


class SecurityHeadersMiddleware:
    """ASGI middleware adding :data:`API_HEADERS` to every HTTP response start, keeping any of them the
    application set itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = _with_headers(message, API_HEADERS)
            await send(message)

        await self.app(scope, receive, with_headers)
