"""The QR code's short path and the rate limit of the anonymous status look-ups (issue 15, items 6 and 7).

The face's QR code, rendered at 96 dpi, decodes with zbar to ``{public_url}/v/<short code>``; that URL opens the
certificate's public status page, and the long ``/v/<identifier>`` keeps working. Status look-ups are limited per
client address (token bucket, default burst 10): the 11th quick request is a 429 problem with Retry-After, while
another address is still served."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import create_app, ratelimit
from api.ratelimit import PublicRateLimit, TokenBuckets
from api.settings import Settings
from certstore.identifiers import short_code
from certstore.keystore import KeyStore
from certstore.services import certificates, renditions
from certstore.store.repository import Repository
from tests.api.conftest import Clients, construction_data

PUBLIC_URL = "https://zz.example.gov.cn"


def _issue(clients: Clients, api_repo: Repository, number: str = "410100202406100001") -> str:
    response = clients.agency.post("/api/v1/certificates", json=construction_data(api_repo, number))
    assert response.status_code == 201, response.text
    return str(response.json()["identifier"])


@pytest.mark.skipif(
    shutil.which("zbarimg") is None, reason="zbarimg not installed (Debian package zbar-tools)"
)
def test_qr_code_at_96_dpi_decodes_to_the_short_path_which_opens_the_status(
    app: Any, clients: Clients, api_repo: Repository, tmp_path: Path
) -> None:
    identifier = _issue(clients, api_repo)
    services = app.state.services
    png = renditions.preview_png(services, certificates.get(api_repo, identifier), dpi=96)
    (tmp_path / "face.png").write_bytes(png)
    decoded = subprocess.run(
        ["zbarimg", "--raw", "-q", str(tmp_path / "face.png")], capture_output=True, text=True, check=True
    ).stdout.strip()
    code = short_code(identifier)
    assert code is not None and decoded == f"{PUBLIC_URL}/v/{code}"
    assert len(decoded) < 60  # was ~95 characters with the identifier (130 with a longer base URL)

    page = clients.anonymous.get(decoded.removeprefix(PUBLIC_URL))
    assert page.status_code == 200 and identifier in page.text and "有效" in page.text
    long = clients.anonymous.get(f"/v/{identifier}")
    assert long.status_code == 200 and identifier in long.text
    status = clients.anonymous.get(f"/api/v1/public/certificates/{code}/status")
    assert status.status_code == 200 and status.json()["identifier"] == identifier
    assert clients.anonymous.get(f"/v/{'a' * 28}").status_code == 404  # a code that names nothing


def test_short_path_of_a_later_version_opens_that_version(clients: Clients, api_repo: Repository) -> None:
    identifier = _issue(clients, api_repo, "410100202406100002")
    document = construction_data(api_repo, "410100202406100002", metadata={"note": "变更"})
    changed = clients.agency.post(
        f"/api/v1/certificates/{identifier}/change", json={"data": document, "reason": "变更"}
    )
    assert changed.status_code == 201, changed.text
    v2 = changed.json()["identifier"]
    assert v2 != identifier
    for version in (identifier, v2):
        body = clients.anonymous.get(f"/api/v1/public/certificates/{short_code(version)}/status").json()
        assert body["identifier"] == version
    old = clients.anonymous.get(f"/api/v1/public/certificates/{short_code(identifier)}/status").json()
    assert old["is_current_version"] is False


def test_status_look_ups_are_limited_per_client_address(
    api_repo: Repository, api_keystore: KeyStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CERTSTORE_PUBLIC_RATE", raising=False)
    monkeypatch.delenv("CERTSTORE_PUBLIC_BURST", raising=False)
    # The buckets' clock stands still: a slow machine must not refill a token between the requests.
    monkeypatch.setattr(ratelimit, "TokenBuckets", functools.partial(TokenBuckets, clock=lambda: 1000.0))
    settings = Settings(data_dir=tmp_path, public_url=PUBLIC_URL, batch_worker=False)
    app = create_app(settings, repo=api_repo, keystore=api_keystore)
    probe = (
        "/api/v1/public/certificates/1.2.156.3005.2.11410100990000025A001.11410100990000025A.00.001.0/status"
    )
    with TestClient(app, raise_server_exceptions=False, client=("203.0.113.7", 40000)) as prober:
        answers = [prober.get(probe if i % 2 else "/v/1.2.156.3005.2.X.Y.00.001.0") for i in range(10)]
        assert all(a.status_code in (404, 422) for a in answers), [a.status_code for a in answers]
        refused = prober.get(probe)
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("application/problem+json")
        body = refused.json()
        assert body["type"].endswith("/rate-limited") and body["status"] == 429
        assert int(refused.headers["Retry-After"]) == 2  # 30 a minute: a token every 2 s
        assert prober.get("/verify").status_code == 200  # other pages are not limited
        other = TestClient(app, raise_server_exceptions=False, client=("198.51.100.9", 40000))
        assert other.get(probe).status_code != 429  # another address is unaffected


def test_token_bucket_refills_at_the_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(0.5, 3, max_keys=2, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(2.0)
    now[0] += 2.0
    assert buckets.take("a") == 0.0 and buckets.take("a") > 0
    assert buckets.take("b") == 0.0 and buckets.take("c") == 0.0
    assert len(buckets) == 2  # the least recently used key was forgotten
    assert PublicRateLimit.from_env({"CERTSTORE_PUBLIC_RATE": "0"}).enabled is False
    with pytest.raises(ValueError):
        PublicRateLimit.from_env({"CERTSTORE_PUBLIC_BURST": "0"})
