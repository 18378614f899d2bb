"""The public URL at the command line: set once (``keys init --public-url``, ``config set public-url``), shown
with where it comes from (``config show``), overridden by ``CERTSTORE_PUBLIC_URL``; without one, every command that
seals (``issue``, ``import``, ``exchange run``) refuses with one line and exit 3 before anything is stored."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from certstore.store.config import CONFIG_FILE, PUBLIC_URL_ENV
from certstore.store.repository import Repository
from tests.cli.conftest import Cli, CliResult
from tests.support.legacy_table import CODE, row, write_csv

URL = "https://zwfw.zhengzhou.gov.cn/certstore"


@pytest.fixture(autouse=True)
def no_public_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests decide the public URL themselves (the session sets one: tests/conftest.py)."""
    monkeypatch.delenv(PUBLIC_URL_ENV, raising=False)


def _refused(result: CliResult) -> None:
    assert result.code == 3, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("Error: no public URL configured")
    assert "certstore config set public-url" in lines[0] and PUBLIC_URL_ENV in lines[0]


def _show(cli: Cli) -> dict[str, object]:
    shown = cli("config", "show", "--json")
    assert shown.code == 0, shown.err
    entry = shown.json()["public_url"]  # type: ignore[index]
    assert isinstance(entry, dict)
    return entry


def test_keys_init_records_the_public_url(cli: Cli, data_dir: Path) -> None:
    result = cli("keys", "init", "--public-url", URL + "/")
    assert result.code == 0, result.err
    assert f"public URL: {URL}" in " ".join(result.out.split())
    assert json.loads((data_dir / CONFIG_FILE).read_text(encoding="utf-8")) == {"public_url": URL}
    assert not (data_dir / "keys" / CONFIG_FILE).exists()  # beside the key store, not in it
    assert _show(cli) == {"value": URL, "source": "config", "configured": URL}
    # --if-missing keeps the keys but still records a new URL
    again = cli("keys", "init", "--if-missing", "--public-url", "https://zz.example.gov.cn")
    assert again.code == 0 and "already initialised" in again.out
    assert _show(cli)["value"] == "https://zz.example.gov.cn"


def test_keys_init_without_a_url_says_how_to_set_one(cli: Cli, data_dir: Path) -> None:
    result = cli("keys", "init")
    assert result.code == 0, result.err
    assert "no public URL configured" in result.err and "config set public-url" in result.err
    assert not (data_dir / CONFIG_FILE).exists()
    assert _show(cli) == {"value": None, "source": "none", "configured": None}


@pytest.mark.parametrize(
    "url", ["zwfw.zhengzhou.gov.cn", "ftp://zwfw.zhengzhou.gov.cn", "https://zz.example.gov.cn/?x=1"]
)
def test_an_invalid_url_is_refused_before_anything_is_made(cli: Cli, data_dir: Path, url: str) -> None:
    result = cli("keys", "init", "--public-url", url)
    assert result.code == 3 and len(result.err.strip().splitlines()) == 1
    assert result.err.startswith(f"Error: --public-url {url!r}")
    assert not (data_dir / "keys").exists() and not (data_dir / CONFIG_FILE).exists()
    result = cli("config", "set", "public-url", url)
    assert result.code == 3 and len(result.err.strip().splitlines()) == 1
    assert not (data_dir / CONFIG_FILE).exists()


def test_config_set_show_unset_and_the_environment_overrides(
    cli: Cli, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = cli("config", "show")
    assert shown.code == 0 and "public-url: not configured" in shown.out
    assert cli("config", "set", "public-url", URL).code == 0
    shown = cli("config", "show")
    assert f"public-url: {URL}  from {CONFIG_FILE}" in shown.out

    monkeypatch.setenv(PUBLIC_URL_ENV, "https://lb.example.gov.cn/")
    shown = cli("config", "show")
    assert f"public-url: https://lb.example.gov.cn  from {PUBLIC_URL_ENV} (overrides {URL}" in shown.out
    assert _show(cli) == {"value": "https://lb.example.gov.cn", "source": "environment", "configured": URL}
    noted = cli("config", "set", "public-url", URL + "/v2")
    assert noted.code == 0 and f"{PUBLIC_URL_ENV}=https://lb.example.gov.cn/ is set here" in noted.err
    monkeypatch.delenv(PUBLIC_URL_ENV)

    assert cli("config", "unset", "public-url").code == 0
    assert _show(cli) == {"value": None, "source": "none", "configured": None}
    assert cli("config", "set", "colour", "blue").code == 3  # only known settings


def _stored(data_dir: Path) -> int:
    repo = Repository.open(data_dir)
    try:
        from sqlalchemy import func, select

        from certstore.store.models import CertificateRow

        with repo.db.session(readonly=True) as session:
            return int(session.scalar(select(func.count()).select_from(CertificateRow)) or 0)
    finally:
        repo.db.dispose()


def test_issue_and_import_refuse_to_seal_without_a_url(cli: Cli, data_dir: Path, tmp_path: Path) -> None:
    assert cli("keys", "init").code == 0
    example = cli("catalogue", "example", CODE)
    data = tmp_path / "data.json"
    data.write_text(example.out, encoding="utf-8")
    _refused(cli("issue", "--catalogue", CODE, "--data", data, "--out", tmp_path / "c.ofd"))
    table = write_csv(tmp_path / "legacy.csv", [row(0), row(1)])
    _refused(cli("import", table, "--catalogue", CODE, "--workers", "0"))
    assert _stored(data_dir) == 0 and not (tmp_path / "c.ofd").exists()

    assert cli("config", "set", "public-url", URL).code == 0
    imported = cli("import", table, "--catalogue", CODE, "--workers", "0")
    assert imported.code == 0 and "imported: 2" in imported.out, imported.err
    issued = cli("issue", "--catalogue", CODE, "--data", data, "--out", tmp_path / "c.ofd")
    assert issued.code == 0, issued.err
    if shutil.which("zbarimg") is None:
        return
    # the QR code of the sealed file opens the configured URL
    decoded: list[str] = []
    with zipfile.ZipFile(tmp_path / "c.ofd") as package:
        for name in package.namelist():
            if name.endswith(".png"):
                image = tmp_path / Path(name).name
                image.write_bytes(package.read(name))
                found = subprocess.run(["zbarimg", "--raw", "-q", str(image)], capture_output=True, text=True)
                decoded += found.stdout.split()
    assert decoded and all(text.startswith(f"{URL}/v/") for text in decoded), decoded


def test_exchange_run_refuses_to_seal_without_a_url(cli: Cli, data_dir: Path, tmp_path: Path) -> None:
    assert cli("keys", "init").code == 0
    source = f"zz-natres=11410100990000017F=sqlite:///{tmp_path / 'frontend.db'}"
    _refused(cli("exchange", "run", "--source", source, "--once"))
    assert not (tmp_path / "frontend.db").exists()  # refused before any source was touched
