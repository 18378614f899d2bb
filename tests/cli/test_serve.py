"""``certstore serve --demo`` really serves: a uvicorn process answers over TCP, with the demo tokens; with no
public URL configured the demo seals with its own address (the one exception to "no URL, no sealing")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from devservers.ports import free_port

CONSTRUCTION = "11410100990000025A001"  # 建筑工程施工许可证, issued by the demo agency


def test_serve_demo_answers_over_http(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    env = {**os.environ, "CERTSTORE_DATA_DIR": str(data_dir)}
    env.pop("CERTSTORE_DATABASE_URL", None)
    env.pop("CERTSTORE_PUBLIC_URL", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from certstore.cli import main; main()",
            "serve",
            "--demo",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{base}/api/v1/health", timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read().decode() if process.stdout else ""
                    raise AssertionError(f"server did not start:\n{output}") from None
                time.sleep(0.2)
        assert health.json()["status"] == "ok"
        tokens = json.loads((data_dir / "demo-tokens.json").read_text())
        assert (data_dir / "demo-tokens.json").stat().st_mode & 0o077 == 0
        catalogue = httpx.get(
            f"{base}/api/v1/catalogue", headers={"Authorization": f"Bearer {tokens['agency']}"}
        )
        assert catalogue.status_code == 200 and len(catalogue.json()) == 6
        assert httpx.get(f"{base}/api/v1/catalogue").status_code == 401
        docs = httpx.get(f"{base}/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        agency = {"Authorization": f"Bearer {tokens['agency']}"}
        form = httpx.get(f"{base}/api/v1/catalogue/{CONSTRUCTION}/form-schema", headers=agency)
        assert form.status_code == 200, form.text
        document = form.json()["example"]
        issued = httpx.post(f"{base}/api/v1/certificates", json=document, headers=agency, timeout=30)
        assert issued.status_code == 201, issued.text
    finally:
        process.terminate()
        process.wait(timeout=20)
    output = process.stdout.read().decode() if process.stdout else ""
    assert f"sealed files print {base} in their QR code" in output
