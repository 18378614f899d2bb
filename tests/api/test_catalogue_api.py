"""The catalogue upload and approval API: an agency uploads a base image (multipart), checks and previews an entry
with its face template without submitting it, submits it; refusals are RFC 9457 problems naming the field; the
bureau reads a stored version's checks and preview and approves."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from tests.api.conftest import Clients
from tests.support import catalogue_entries as ce

#: The API translates; the checks and the storage have their own tests on both databases.
pytestmark = pytest.mark.parametrize("database_backend", ["sqlite"])
FOREIGN_ISSUER = {"name": "郑州市自然资源和规划局", "credit_code": "11410100990000017F"}


def _png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return image.size


def test_upload_check_preview_submit_and_approve(clients: Clients) -> None:
    """Upload → asset name (201, then 200 for the same image); checks and preview of an unsubmitted document;
    an overflowing template refused 422 with the field; the good one submitted, checked and approved."""
    files = {"file": ("底图.svg", ce.BASE_IMAGE_SVG, "image/svg+xml")}
    uploaded = clients.agency.post("/api/v1/catalogue/assets", files=files)
    assert uploaded.status_code == 201, uploaded.text
    asset: dict[str, Any] = uploaded.json()
    assert asset["name"].startswith("asset:") and asset["source_type"] == "image/svg+xml"
    assert (round(asset["width_mm"]), round(asset["height_mm"])) == (210, 297)
    assert clients.agency.post("/api/v1/catalogue/assets", files=files).status_code == 200

    document = ce.entry_document(base_image=asset["name"])
    document["face_template"] = ce.template(cramped=True)
    checked = clients.agency.post("/api/v1/catalogue/checks", json=document)
    assert checked.status_code == 200 and checked.json()["status"] == "draft" and not checked.json()["passed"]
    failed = [c for c in checked.json()["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["longest_values_fit"]
    assert failed[0]["path"] == "$.face_schema.properties.project_name"
    no_preview = clients.agency.post("/api/v1/catalogue/preview", json=document)
    assert no_preview.status_code == 422 and no_preview.json()["type"].endswith("/no-preview")
    refused = clients.agency.post("/api/v1/catalogue", json=document)
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"][0]["field"] == "body.face_schema.properties.project_name"

    document["face_template"] = ce.template()
    preview = clients.agency.post("/api/v1/catalogue/preview", json=document)
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"
    width, height = _png_size(preview.content)
    assert abs(width / height - 210 / 297) < 0.01
    assert clients.agency.post("/api/v1/catalogue", json=document).status_code == 201

    checks = clients.bureau.get(f"/api/v1/catalogue/{ce.CODE}/versions/1/checks")
    assert checks.status_code == 200 and checks.json()["status"] == "pending" and checks.json()["passed"]
    assert checks.json()["checks"][0]["name"] == "seal_owner"
    assert clients.bureau.get(f"/api/v1/catalogue/{ce.CODE}/versions/1/preview.png").status_code == 200
    approved = clients.bureau.post(f"/api/v1/catalogue/{ce.CODE}/versions/1/approve")
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert clients.agency.get(f"/api/v1/catalogue/{ce.CODE}").json()["base_image"] == asset["name"]


def test_refusals_are_problems(clients: Clients) -> None:
    """A file that is not an image, and checks of another organisation's entry, are refused as problems."""
    bad = clients.agency.post(
        "/api/v1/catalogue/assets", files={"file": ("x.png", b"\x89PNG\r\n\x1a\nbroken")}
    )
    assert bad.status_code == 422 and bad.json()["type"].endswith("/invalid-base-image")
    assert "not a readable PNG" in bad.json()["detail"] and bad.json()["errors"][0]["field"] == "file"
    foreign = ce.entry_document()
    foreign["issuer"] = FOREIGN_ISSUER
    assert clients.agency.post("/api/v1/catalogue/checks", json=foreign).status_code == 403
    assert clients.window.post("/api/v1/catalogue/checks", json=foreign).status_code == 403
