"""What ``certstore serve`` asks of uvicorn beyond its options: a time limit on request headers.

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive`` seconds, but any byte received cancels
that timer, and nothing limits how long the request line and headers may take: a client sending a header byte
every few seconds holds its connection (and a slot of the server's) for as long as it likes. The protocol
:class:`HeaderTimeoutProtocol` (uvicorn's h11 protocol) gives every request ``header_timeout`` seconds
(``CERTSTORE_HEADER_TIMEOUT``, ``certstore serve --header-timeout``; default 10) from the moment the connection
opens, or the previous response ends, until its headers are complete; then it closes the connection. The header
block itself is bounded by h11 (:data:`MAX_HEADER_BYTES`), the body by :mod:`api.limits` (size, and its read
timeout ``CERTSTORE_BODY_TIMEOUT``).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = [
    "HEADER_TIMEOUT_ENV",
    "MAX_HEADER_BYTES",
    "HeaderTimeoutProtocol",
    "apply_edge_options",
    "header_timeout",
    "uvicorn_options",
]

HEADER_TIMEOUT_ENV = "CERTSTORE_HEADER_TIMEOUT"
DEFAULT_HEADER_TIMEOUT = 10.0
#: The largest request line plus headers accepted (h11's incomplete-event limit): a bigger one is answered 400.
MAX_HEADER_BYTES = 16 * 1024


def header_timeout(env: Any = os.environ) -> float:
    """Seconds a request's headers may take (``CERTSTORE_HEADER_TIMEOUT``; 0: no limit)."""
    value = float(env.get(HEADER_TIMEOUT_ENV, DEFAULT_HEADER_TIMEOUT))
    if value < 0:
        raise ValueError(f"{HEADER_TIMEOUT_ENV} must be ≥ 0 seconds")
    return value


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers are not complete within
    :func:`header_timeout` seconds of the connection opening or the previous response ending."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout()
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # the request's headers are in
            self._disarm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_header_timer()  # the next request on this connection gets its own time

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        if self.header_timeout:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.logger.info("closing a connection whose request headers took over %g s", self.header_timeout)
            self.transport.close()


def apply_edge_options(
    trusted_proxies: tuple[str, ...], header_timeout_s: float | None, body_timeout_s: float | None
) -> None:
    """Hand ``certstore serve``'s edge options to the workers (which read them from the environment): the
    trusted proxies (``CERTSTORE_TRUSTED_PROXIES``), the header and body timeouts. Options not given leave the
    environment's value (or the default) in force; a malformed proxy address is a ValueError here, at start-up."""
    from api.proxies import parse_trusted_proxies

    if trusted_proxies:
        os.environ["CERTSTORE_TRUSTED_PROXIES"] = ",".join(parse_trusted_proxies(trusted_proxies))
    else:
        parse_trusted_proxies([os.environ.get("CERTSTORE_TRUSTED_PROXIES", "")])
    if header_timeout_s is not None:
        os.environ[HEADER_TIMEOUT_ENV] = repr(header_timeout_s)
    header_timeout()
    if body_timeout_s is not None:
        os.environ["CERTSTORE_BODY_TIMEOUT"] = repr(body_timeout_s)
    if float(os.environ.get("CERTSTORE_BODY_TIMEOUT", "30")) < 0:
        raise ValueError("CERTSTORE_BODY_TIMEOUT must be ≥ 0 seconds")


def uvicorn_options(keep_alive_timeout: int) -> dict[str, Any]:
    """uvicorn's options for the edges: this module's protocol, the header size limit, the keep-alive timeout,
    and no proxy headers of its own — uvicorn would believe ``X-Forwarded-For`` from any loopback peer; the
    application believes it only from the configured proxies (:mod:`api.proxies`)."""
    return {
        "http": HeaderTimeoutProtocol,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "timeout_keep_alive": keep_alive_timeout,
        "proxy_headers": False,
    }
