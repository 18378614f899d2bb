"""A real server and a real browser for the page tests.

- ``site``: a throwaway data directory (dev keys, the shipped catalogue, principals with passwords, certificates
  of two holders) served by ``certstore serve`` (uvicorn) on a free loopback port, for the whole session.
- ``browser``: Debian's Chromium (``/usr/bin/chromium``) driven by Playwright, headless — never a downloaded
  browser (``scripts/install-system-deps --test`` installs the package).
- ``page`` / ``phone_page``: a fresh browser context at 1366×768, or at phone width (390×844).
- ``shot(page, name)``: a screenshot into the session's screenshot folder, listed at the end of the run
  (``CERTSTORE_SCREENSHOTS`` chooses the folder; default ``screenshots`` in the run's temporary directory;
  ``tests/support/screenshots.py``).
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from certstore.access import Role
from certstore.app import Application
from certstore.identifiers import HolderIdType
from certstore.keystore import KeyStore
from certstore.lifecycle import Action
from certstore.records import Holder, draft_from_json, draft_to_json, example_draft
from certstore.services import certificates, logins
from certstore.services.catalogue import get_entry, load_shipped
from certstore.services.keys import init_dev_keys
from certstore.store.db import Database, database_url
from certstore.store.repository import Repository
from devservers.ports import free_port
from tests.support import issuing, screenshots

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CONSTRUCTION = "11410100990000025A001"  # 建筑工程施工许可证, issuer 11410100990000025A
LAND_USE = "11410100990000017F002"  # 建设用地规划许可证, issuer 11410100990000017F
HOLDER_A = Holder("郑州示例置业有限公司", HolderIdType.CREDIT_CODE, "91410100MA44A1B2XW")
HOLDER_B = Holder("郑州另一置业有限公司", HolderIdType.CREDIT_CODE, "91410105MA9K0XQ7XN")
PASSWORD = "correct-horse-9"


@dataclass(frozen=True)
class Account:
    organisation_code: str
    organisation_name: str
    name: str
    role: Role


ACCOUNTS = {
    "window": Account("12410100MB0000001X", "郑州市政务服务中心", "张三", Role.WINDOW),
    "other_window": Account("12410100MB0000002X", "金水区政务服务中心", "王五", Role.WINDOW),
    "agency": Account("11410100990000025A", "郑州市城乡建设局", "李四", Role.AGENCY),
    "bureau": Account("11410100MB1700000X", "郑州市大数据管理局", "钱七", Role.BUREAU),
    "auditor": Account("11410100MB1700001X", "郑州市审计局", "赵六", Role.AUDITOR),
}


@dataclass
class Site:
    """The running server and what the data directory holds."""

    base_url: str
    data_dir: Path
    #: holder name → identifiers of their current certificates, valid one first
    valid_a: str
    suspended_a: str
    revoked_a: str
    valid_b: str
    tampered: Path
    repo: Repository
    extra: dict[str, Any] = field(default_factory=dict)


def _issue(app: Application, code: str, number: str, holder: Holder) -> str:
    entry = get_entry(app.repo, code)
    document = draft_to_json(example_draft(entry))
    document["certificate_number"] = number
    document["holder"] = {"name": holder.name, "id_type": str(holder.id_type), "id_number": holder.id_number}
    result = issuing.issue(app, draft_from_json(document), file_maker=None)  # sealed with the app's keys
    return result.certificate.identifier


def _tamper(original: bytes) -> bytes:
    """The same OFD with one character of the face changed after sealing (the references no longer match)."""
    source = zipfile.ZipFile(io.BytesIO(original))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if re.search(r"Page_0/Content\.xml$", info.filename):
                data = data.replace("郑州示例置业".encode(), "郑州伪造置业".encode(), 1)
            target.writestr(info, data)
    return out.getvalue()


def _server_env(data_dir: Path, public_url: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("CERTSTORE_") or k == "CERTSTORE_HOLDER_KEY"
    }
    env.update({"CERTSTORE_DATA_DIR": str(data_dir), "CERTSTORE_PUBLIC_URL": public_url})
    return env


def prepare_site(data_dir: Path, env: dict[str, str], base_url: str) -> Application:
    """A data directory for a served site: the schema, dev keys, the shipped catalogue and a login per account of
    :data:`ACCOUNTS`; the application that issues its certificates with ``base_url`` in their QR codes."""
    with Database(database_url(data_dir, env=env)) as database:
        database.upgrade()
    keystore = KeyStore(data_dir / "keys")
    init_dev_keys(keystore)
    repo = Repository.open(data_dir, env=env)
    load_shipped(repo)
    for account in ACCOUNTS.values():
        logins.set_password(
            repo,
            organisation_code=account.organisation_code,
            name=account.name,
            password=PASSWORD,
            role=account.role,
            organisation_name=account.organisation_name,
        )
    return Application(repo, keystore, public_url=base_url)


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data_dir = tmp_path_factory.mktemp("pages-site") / "data"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = _server_env(data_dir, base_url)
    app = prepare_site(data_dir, env, base_url)
    repo = app.repo
    valid_a = _issue(app, CONSTRUCTION, "410100202406180101", HOLDER_A)
    revoked_a = _issue(app, CONSTRUCTION, "410100202406180102", HOLDER_A)
    issuing.act(app, revoked_a, Action.REVOKE, reason="以欺骗手段取得")
    suspended_a = _issue(app, LAND_USE, "地字第410100202400045号", HOLDER_A)
    issuing.act(app, suspended_a, Action.SUSPEND, reason="核查中")
    valid_b = _issue(app, CONSTRUCTION, "410100202406180201", HOLDER_B)
    stored = certificates.get(repo, valid_a)
    assert stored.file_key is not None
    tampered = data_dir.parent / "篡改的施工许可证.ofd"
    tampered.write_bytes(_tamper(repo.blobs.get(stored.file_key)))

    process = subprocess.Popen(
        [sys.executable, "-c", "from certstore.cli import main; main()", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base_url}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = (
                    process.stdout.read().decode() if process.stdout and process.poll() is not None else ""
                )
                raise AssertionError(f"server did not start:\n{output}")
            time.sleep(0.2)
        yield Site(base_url, data_dir, valid_a, suspended_a, revoked_a, valid_b, tampered, repo)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        repo.db.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run scripts/install-system-deps --test (Debian package chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def _context(browser: Any, site: Site, **options: Any) -> Any:
    context = browser.new_context(base_url=site.base_url, locale="zh-CN", accept_downloads=True, **options)
    context.set_default_timeout(15_000)
    return context


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    """A page at a desktop counter's screen size (1366×768)."""
    context = _context(browser, site, viewport={"width": 1366, "height": 768})
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def phone_page(browser: Any, site: Site) -> Iterator[Any]:
    """A page at phone width (390×844, touch, device scale 2)."""
    context = _context(
        browser,
        site,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    try:
        yield context.new_page()
    finally:
        context.close()


# --- screenshots -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = screenshots.folder(tmp_path_factory.getbasetemp())
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def shot(screenshot_dir: Path, pytestconfig: pytest.Config) -> Callable[[Any, str], Path]:
    def take(page: Any, name: str, *, full_page: bool = True) -> Path:
        path = screenshot_dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        screenshots.record(pytestconfig, path)
        return path

    return take


# --- helpers for the tests -------------------------------------------------------------------------------


def login(page: Any, who: str, next_path: str = "/") -> None:
    account = ACCOUNTS[who]
    page.goto(f"/login?next={next_path}")
    page.fill("input[name=organisation_code]", account.organisation_code)
    page.fill("input[name=name]", account.name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('登录')")
    page.wait_for_load_state()
