"""``X-Forwarded-For`` is believed only from configured proxies (api/proxies.py; issue 17 item 5).

The middleware's reading of a proxy chain; in process, the client address the audit log records; over HTTP, a
real ``certstore serve``: by default a loopback peer cannot choose its address with the header (the per-client
rate limit of the public status look-ups still counts it as one client), and with ``CERTSTORE_TRUSTED_PROXIES``
the proxy's header decides."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select

from api import create_app
from api.proxies import TrustedProxiesMiddleware, parse_trusted_proxies
from api.settings import Settings
from certstore.cli import cli
from certstore.keystore import KeyStore
from certstore.services.keys import init_dev_keys
from certstore.store.models import AuditEventRow
from certstore.store.repository import Repository
from devservers.api import ApiServer
from tests.support.aio import run_coroutine


@pytest.fixture
def database_backend() -> str:
    """The client address does not depend on the database: SQLite only."""
    return "sqlite"


def _seen(middleware: TrustedProxiesMiddleware, peer: str, headers: dict[str, str]) -> tuple[str, str]:
    scope: dict[str, Any] = {
        "type": "http",
        "client": (peer, 4711),
        "scheme": "http",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope)

    middleware.app = app
    run_coroutine(middleware(scope, None, None))  # type: ignore[arg-type]
    return seen["client"][0], seen["scheme"]


def test_the_chain_is_read_from_the_right_and_only_from_trusted_peers() -> None:
    """From an untrusted peer the headers are ignored; from a trusted one the right-most hop that is not a
    trusted proxy is the client (a client's own prepended entries do not count); garbage ends the chain."""
    trusting = TrustedProxiesMiddleware(None, parse_trusted_proxies(["10.0.0.5, 10.1.0.0/24"]))  # type: ignore[arg-type]
    nobody = TrustedProxiesMiddleware(None, ())  # type: ignore[arg-type]
    spoof = {"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https"}
    assert _seen(nobody, "127.0.0.1", spoof) == ("127.0.0.1", "http")
    assert _seen(trusting, "192.0.2.9", spoof) == ("192.0.2.9", "http")
    assert _seen(trusting, "10.0.0.5", spoof) == ("1.2.3.4", "https")
    chain = {"X-Forwarded-For": "6.6.6.6, 198.51.100.7, 10.1.0.3"}  # client-made, the client, a proxy hop
    assert _seen(trusting, "10.0.0.5", chain) == ("198.51.100.7", "http")
    assert _seen(trusting, "10.0.0.5", {"X-Forwarded-For": "10.1.0.9, not-an-ip"}) == ("10.0.0.5", "http")
    assert _seen(trusting, "10.0.0.5", {"X-Forwarded-For": "10.1.0.9"}) == ("10.1.0.9", "http")
    with pytest.raises(ValueError, match="not an IP"):
        parse_trusted_proxies(["localhost"])


def test_the_audit_log_records_the_forwarded_client_only_behind_a_trusted_proxy(
    api_repo: Repository, api_keystore: KeyStore, tmp_path: Path
) -> None:
    """The same request from the configured proxy and from another peer: the audit entry names the forwarded
    address in the first case only."""
    settings = Settings(data_dir=tmp_path, batch_worker=False, trusted_proxies=("10.0.0.0/8",))
    app = create_app(settings, repo=api_repo, keystore=api_keystore)
    clients = {}
    for peer in ("10.2.3.4", "192.0.2.50"):
        request_id = uuid.uuid4().hex
        with TestClient(app, client=(peer, 5000)) as client:
            answer = client.get(
                "/api/v1/catalogue", headers={"X-Forwarded-For": "203.0.113.8", "X-Request-ID": request_id}
            )
            assert answer.status_code == 401
            assert app.state.services.audit.flush()
        with api_repo.db.session(readonly=True) as session:
            row = session.scalars(select(AuditEventRow).where(AuditEventRow.request_id == request_id)).one()
        clients[peer] = row.client
    assert clients == {"10.2.3.4": "203.0.113.8", "192.0.2.50": "192.0.2.50"}


def _statuses(server: ApiServer, forwarded: list[str]) -> list[int]:
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        return [
            client.get(
                "/api/v1/public/certificates/NO-SUCH/status", headers={"X-Forwarded-For": f}
            ).status_code
            for f in forwarded
        ]


def test_over_http_the_header_counts_only_from_a_configured_proxy(tmp_path: Path) -> None:
    """A real server: by default three look-ups claiming three addresses from one loopback peer are one client
    (the third is rate-limited); with ``CERTSTORE_TRUSTED_PROXIES=127.0.0.1`` they are three clients, and one
    forwarded address is limited as one."""
    data_dir = tmp_path / "data"
    init_dev_keys(KeyStore(data_dir / "keys"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTSTORE_")}
    env.update(CERTSTORE_PUBLIC_BURST="2", CERTSTORE_PUBLIC_RATE="1")
    spoofed = ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
    with ApiServer(data_dir, env=env) as server:
        assert _statuses(server, spoofed) == [404, 404, 429]
    with ApiServer(data_dir, env={**env, "CERTSTORE_TRUSTED_PROXIES": "127.0.0.1"}) as server:
        assert _statuses(server, spoofed) == [404, 404, 404]
        assert _statuses(server, ["198.51.100.7, 127.0.0.1"] * 3) == [404, 404, 429]


def test_serve_refuses_a_malformed_proxy_address(tmp_path: Path) -> None:
    """``certstore serve --trusted-proxy`` with something that is not an address: a usage error, nothing served."""
    result = CliRunner().invoke(
        cli, ["--data-dir", str(tmp_path / "data"), "serve", "--trusted-proxy", "proxy.example"]
    )
    assert result.exit_code == 2
    assert "not an IP address or network" in result.output
