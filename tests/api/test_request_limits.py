"""Request bodies are bounded before they are read (api/limits.py, api/serving.py; issue 17 item 2).

In process, the application is driven through :class:`Feeder`, an ASGI wrapper that hands it a body of its own
making and counts every byte the application pulls: a declared length over the route's limit is answered 413
before a byte is pulled; a chunked body is cut at the limit; an unauthenticated request to an authenticated route
is answered 401 without reading its body; a malformed body is answered 422 only after authentication (and audited
under the caller); a stalled body 408.

Over HTTP, against a real ``certstore serve``: 50 MB bodies (by ``Content-Length`` and chunked, to a batch, a
certificate and the public upload) are refused without the server's resident memory growing by 20 MB; a body
that stalls is answered 408; connections whose headers trickle in are closed after the header timeout.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select as sql_select

from api import create_app
from api.limits import MULTIPART_SLACK
from api.settings import Settings
from certstore.keystore import KeyStore
from certstore.services.keys import init_dev_keys
from certstore.store.models import AuditEventRow
from certstore.store.repository import Repository
from devservers.api import ApiServer
from tests.api.conftest import CONSTRUCTION, Clients, construction_data

CHUNK = 64 * 1024
MB = 1_000_000
#: The start of a multipart body whose file never ends (boundary ``b``).
FILE_PART = (
    b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n'
    b"Content-Type: application/pdf\r\n\r\n%PDF-1.7\n"
)
MULTIPART = "multipart/form-data; boundary=b"


@pytest.fixture
def database_backend() -> str:
    """The edges do not touch the database: SQLite only."""
    return "sqlite"


class Feeder:
    """ASGI wrapper: the wrapped application gets, instead of the client's body, ``total`` bytes (None: without
    end) in 64 KiB parts, framed as ``headers`` say (``content-length`` or ``transfer-encoding: chunked``);
    ``pulled`` counts the bytes it read. ``stall_after``: parts handed over before the feed stops sending;
    ``prefix``: the first part (e.g. a multipart file's headers), the rest are zeros."""

    def __init__(
        self,
        app: Any,
        framing: dict[str, str],
        total: int | None = None,
        stall_after: int | None = None,
        prefix: bytes = b"",
    ) -> None:
        self.app, self.framing, self.total, self.stall_after = app, framing, total, stall_after
        self.prefix = prefix
        self.pulled = 0
        self.parts = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        framing = {k.encode(): v.encode() for k, v in self.framing.items()}
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-length", b"transfer-encoding")]
        scope = {**scope, "headers": headers + list(framing.items())}
        ended = False

        async def feed() -> dict[str, Any]:
            nonlocal ended
            if ended:
                return await receive()
            if self.stall_after is not None and self.parts >= self.stall_after:
                await asyncio.sleep(3600)  # the client went quiet
            size = CHUNK if self.total is None else min(CHUNK, self.total - self.pulled)
            body = (
                self.prefix + bytes(size - len(self.prefix))
                if self.parts == 0 and self.prefix
                else bytes(size)
            )
            self.pulled += size
            self.parts += 1
            ended = self.total is not None and self.pulled >= self.total
            return {"type": "http.request", "body": body, "more_body": not ended}

        await self.app(scope, feed, send)


def _entries(app: Any, api_repo: Repository) -> list[AuditEventRow]:
    assert app.state.services.audit.flush()
    with api_repo.db.session(readonly=True) as session:
        return list(session.scalars(sql_select(AuditEventRow).order_by(AuditEventRow.seq)))


def _feed(app: Any, clients: Clients, who: str, method: str, url: str, feeder: Feeder, **kwargs: Any) -> Any:
    with TestClient(feeder, raise_server_exceptions=False) as client:
        client.headers.update(getattr(clients, who).headers)
        return client.request(method, url, **kwargs)


def test_a_declared_length_over_the_route_limit_is_refused_before_a_byte_is_read(
    app: Any, clients: Clients
) -> None:
    """413 by ``Content-Length``, per route (JSON 1 MiB, batch 16 MiB, upload 20 MiB + framing): nothing pulled,
    and the answer closes the connection (the server does not read the rest)."""
    settings = app.state.services.settings
    cases = [
        ("agency", "/api/v1/certificates", settings.max_json_bytes),
        ("agency", "/api/v1/batches", settings.max_batch_bytes),
        ("anonymous", "/api/v1/public/verify", settings.max_upload_bytes + MULTIPART_SLACK),
    ]
    for who, url, limit in cases:
        feeder = Feeder(app, {"content-length": str(limit + 1)})
        answer = _feed(app, clients, who, "POST", url, feeder)
        assert answer.status_code == 413, (url, answer.text)
        assert answer.json()["type"].endswith("/request-too-large")
        assert str(limit) in answer.json()["detail"]
        assert answer.headers["connection"] == "close"
        assert feeder.pulled == 0, url
        within = Feeder(app, {"content-length": str(limit)}, total=0)  # at the limit: on to the route
        assert _feed(app, clients, who, "POST", url, within).status_code != 413


def test_a_chunked_body_is_cut_at_the_limit_while_streaming(app: Any, clients: Clients) -> None:
    """A chunked body without end, from an authenticated caller: 413 once the limit is passed — the application
    pulled at most one part more than the limit — on a JSON route and on the public upload route."""
    settings = app.state.services.settings
    for who, url, limit in [
        ("agency", "/api/v1/certificates", settings.max_json_bytes),
        ("anonymous", "/api/v1/public/verify", settings.max_upload_bytes + MULTIPART_SLACK),
    ]:
        feeder = Feeder(app, {"transfer-encoding": "chunked", "content-type": "application/json"})
        if url.endswith("verify"):
            feeder = Feeder(
                app, {"transfer-encoding": "chunked", "content-type": MULTIPART}, prefix=FILE_PART
            )
        answer = _feed(app, clients, who, "POST", url, feeder)
        assert answer.status_code == 413, (url, answer.text)
        assert answer.json()["type"].endswith("/request-too-large")
        assert answer.headers["connection"] == "close"
        assert limit < feeder.pulled <= limit + CHUNK, (url, feeder.pulled)


def test_an_unauthenticated_request_is_answered_401_without_reading_its_body(
    app: Any, clients: Clients, api_repo: Repository
) -> None:
    """No token, or a wrong one, on routes that need one — chunked without end or within the limit: 401 with
    nothing pulled, audited as a denial under the route."""
    for headers in ({}, {"Authorization": "Bearer cst_nobody_secret"}):
        for url in ("/api/v1/batches", "/api/v1/certificates", "/api/v1/catalogue"):
            feeder = Feeder(app, {"transfer-encoding": "chunked", "content-type": "application/json"})
            request_id = uuid.uuid4().hex
            answer = _feed(
                app,
                clients,
                "anonymous",
                "POST",
                url,
                feeder,
                headers={**headers, "X-Request-ID": request_id},
            )
            assert answer.status_code == 401, (url, answer.text)
            assert answer.headers["www-authenticate"].startswith("Bearer")
            assert answer.headers["connection"] == "close"
            assert feeder.pulled == 0, url
            (entry,) = [e for e in _entries(app, api_repo) if e.request_id == request_id]
            assert (entry.status_code, entry.outcome, entry.resource) == (401, "deny", f"POST {url}")


def test_a_malformed_body_is_judged_only_after_authentication(
    app: Any, clients: Clients, api_repo: Repository
) -> None:
    """Malformed JSON: with a wrong token 401 (not 422); with a valid one 422, audited under the caller. A NUL
    in a JSON body is still refused (422), after authentication too."""
    broken = b'{"catalogue": '
    wrong = clients.anonymous.post(
        "/api/v1/certificates",
        content=broken,
        headers={"Authorization": "Bearer cst_x_y", "Content-Type": "application/json"},
    )
    assert wrong.status_code == 401
    request_id = uuid.uuid4().hex
    invalid = clients.agency.post(
        "/api/v1/certificates",
        content=broken,
        headers={"Content-Type": "application/json", "X-Request-ID": request_id},
    )
    assert invalid.status_code == 422
    (entry,) = [e for e in _entries(app, api_repo) if e.request_id == request_id]
    assert entry.principal and entry.role == "agency" and entry.status_code == 422
    document = construction_data(api_repo)
    document["holder"]["name"] = "NUL\u0000"
    nul = clients.agency.post("/api/v1/certificates", json=document)
    assert nul.status_code == 422 and nul.json()["type"].endswith("/nul-character")
    assert clients.anonymous.post("/api/v1/certificates", json=document).status_code == 401


def test_a_stalled_body_is_answered_408(api_repo: Repository, api_keystore: KeyStore, tmp_path: Path) -> None:
    """A body that stops arriving for ``body_timeout`` seconds while the route waits for it: 408, connection
    closed."""
    settings = Settings(data_dir=tmp_path, batch_worker=False, body_timeout=0.3)
    app = create_app(settings, repo=api_repo, keystore=api_keystore)
    framing = {"transfer-encoding": "chunked", "content-type": MULTIPART}
    feeder = Feeder(app, framing, stall_after=2, prefix=FILE_PART)
    started = time.monotonic()
    with TestClient(feeder, raise_server_exceptions=False) as client:
        answer = client.post("/api/v1/public/verify")
    assert answer.status_code == 408, answer.text
    assert answer.json()["type"].endswith("/request-timeout")
    assert answer.headers["connection"] == "close"
    assert time.monotonic() - started < 5


# --- a real server ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """``certstore serve`` with a 1 s header timeout and a 1 s body timeout (defaults otherwise)."""
    data_dir = tmp_path_factory.mktemp("limits-serve") / "data"
    init_dev_keys(KeyStore(data_dir / "keys"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTSTORE_")}
    env.update(CERTSTORE_HEADER_TIMEOUT="1", CERTSTORE_BODY_TIMEOUT="1")
    with ApiServer(data_dir, env=env) as served:
        yield served


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _send(port: int, head: bytes, parts: Iterator[bytes]) -> tuple[int, bytes, int]:
    """Send ``head`` and then ``parts`` on a raw connection until the server answers (or closes); the status,
    the answer as received and how many body bytes were sent. One 64 KiB buffer: the test holds no body."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        for part in parts:
            if select.select([sock], [], [], 0)[0]:
                break  # answered already
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(part)
        answer = b""
        try:
            while not answer.endswith(b"}") and len(answer) < 65536:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except ConnectionResetError:
            pass
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer[9:12]), answer, sent


def _chunked(total: int) -> Iterator[bytes]:
    frame = b"%x\r\n" % CHUNK + bytes(CHUNK) + b"\r\n"
    for _ in range(total // CHUNK):
        yield frame
    yield b"0\r\n\r\n"


def _plain(total: int) -> Iterator[bytes]:
    block = bytes(CHUNK)
    for _ in range(total // CHUNK):
        yield block


def test_50_mb_bodies_are_refused_without_the_server_growing(server: ApiServer) -> None:
    """50 MB to a real server — by Content-Length and chunked, unauthenticated to a batch and a certificate, and
    to the public upload route (cut at its 20 MiB limit while streaming): each refused (413/401), the server's
    resident memory grows by less than 20 MB in all, and it still answers /health at once."""
    total = 50 * MB
    httpx.get(f"{server.base_url}/api/v1/health", timeout=10)
    before = _rss_kib(server.pid)
    host = f"Host: 127.0.0.1:{server.port}\r\n".encode()
    json_head = b"Content-Type: application/json\r\n"
    cases = [
        (b"POST /api/v1/batches HTTP/1.1\r\n" + host + json_head + b"Content-Length: %d\r\n\r\n" % total, 413),
        (b"POST /api/v1/batches HTTP/1.1\r\n" + host + json_head + b"Transfer-Encoding: chunked\r\n\r\n", 401),
        (b"POST /api/v1/certificates HTTP/1.1\r\n" + host + json_head + b"Transfer-Encoding: chunked\r\n\r\n", 401),
        (
            b"POST /api/v1/public/verify HTTP/1.1\r\n" + host
            + b"Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n" % len(FILE_PART) + FILE_PART + b"\r\n",
            413,
        ),
    ]  # fmt: skip
    for head, status in cases:
        parts = _plain(total) if b"Content-Length" in head else _chunked(total)
        got, answer, sent = _send(server.port, head, parts)
        assert got == status, answer[:500]
        assert b"connection: close" in answer.lower()
        assert b"nosniff" in answer.lower()
        # refused long before the end: what was sent at all is the route's limit (20 MiB for the upload, 0
        # for the others) plus what the two sockets' kernel buffers took in meanwhile
        read = 20 * 1024 * 1024 if b"verify" in head else 0
        assert sent < read + 12 * MB, (head[:30], sent)
        print(f"{head.split(b' HTTP')[0].decode()} -> {got} after {sent / MB:.1f} MB sent")
    health_started = time.monotonic()
    assert httpx.get(f"{server.base_url}/api/v1/health", timeout=10).status_code == 200
    assert time.monotonic() - health_started < 1.0
    grown = (_rss_kib(server.pid) - before) * 1024
    print(f"server RSS {before / 1024:.1f} MiB before, grown by {grown / MB:.2f} MB")
    assert grown < 20 * MB, f"the server grew by {grown / MB:.1f} MB"


def test_a_stalled_upload_is_answered_408_over_http(server: ApiServer) -> None:
    """A chunked upload that stops after one part: 408 after the 1 s body timeout, connection closed."""
    head = (
        b"POST /api/v1/public/verify HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + b"%x\r\n" % len(FILE_PART) + FILE_PART + b"\r\n")
        answer = sock.recv(65536)
        while answer and not answer.endswith(b"}"):
            more = sock.recv(65536)
            if not more:
                break
            answer += more
        assert sock.recv(1) == b""  # closed
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert 0.9 < time.monotonic() - started < 5


def test_connections_whose_headers_trickle_in_are_closed(server: ApiServer) -> None:
    """50 connections sending a header line every 0.3 s (each keeping uvicorn's keep-alive timer off): all closed
    by the server within the 1 s header timeout (plus slack), while the server keeps answering others."""
    sockets = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(50)]
    started = time.monotonic()
    try:
        for sock in sockets:
            sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")
        open_ = set(range(len(sockets)))
        n = 0
        while open_ and time.monotonic() - started < 6:
            time.sleep(0.3)
            n += 1
            for i in list(open_):
                try:
                    sockets[i].sendall(b"X-Slow-%d: 1\r\n" % n)
                except OSError:
                    open_.discard(i)
                    continue
                if select.select([sockets[i]], [], [], 0)[0]:
                    try:
                        if sockets[i].recv(1024) == b"":
                            open_.discard(i)
                    except OSError:
                        open_.discard(i)
            assert httpx.get(f"{server.base_url}/api/v1/health", timeout=5).status_code == 200
        elapsed = time.monotonic() - started
    finally:
        for sock in sockets:
            sock.close()
    assert not open_, f"{len(open_)} slow connections still open after {elapsed:.1f} s"
    assert elapsed < 3.5


def test_a_staff_page_upload_without_a_session_is_not_read(app: Any, clients: Clients) -> None:
    """The agency page's CSV import (a multipart upload) without a live session: answered by the page itself (its
    login page, 401) with nothing of the upload pulled; the connection is closed."""
    feeder = Feeder(app, {"transfer-encoding": "chunked", "content-type": MULTIPART}, prefix=FILE_PART)
    answer = _feed(app, clients, "anonymous", "POST", f"/agency/types/{CONSTRUCTION}/batch", feeder)
    assert answer.status_code == 401, answer.text[:300]
    assert 'name="password"' in answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["connection"] == "close"
    assert feeder.pulled == 0
