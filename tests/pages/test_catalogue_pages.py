"""The catalogue editor without its script and the bureau's review page (no browser: FastAPI's TestClient): one
form submission carries the base image and the template files; a version whose check fails shows a disabled
approve button, and approving it anyway is refused by the core."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi.testclient import TestClient

from api import create_app
from api.settings import Settings
from bench._setup import prepared_data_dir
from certstore.access import Role
from certstore.catalogue import CatalogueEntry
from certstore.services import logins
from certstore.services.catalogue import get_submission, register_entry
from certstore.services.catalogue_assets import asset_digest
from tests.support import catalogue_entries as ce

PASSWORD = "correct-horse-9"
ACCOUNTS = {
    "agency": (ce.ISSUER["credit_code"], "发证丙", Role.AGENCY),
    "bureau": ("11410100MB1700000X", "管理丙", Role.BUREAU),
}


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert match, html[:500]
    return match.group(1)


def _login(client: TestClient, who: str) -> str:
    code, name, _ = ACCOUNTS[who]
    form = {"csrf_token": _csrf(client.get("/login").text), "organisation_code": code, "name": name,
            "password": PASSWORD}  # fmt: skip
    assert client.post("/login", data=form, follow_redirects=False).status_code == 303
    return _csrf(client.get("/verify").text)


def test_the_editor_form_and_the_bureaus_disabled_approval(tmp_path: Path) -> None:
    """Without the script: the base image and the template files go with the form (the image is uploaded and
    named in the entry), 检查并预览 shows the failed check and its reason, 提交审批 is refused with it. The bureau
    sees the same failed check on a version stored without the checks, its 批准 disabled; posting it anyway is
    refused (422) and the version stays pending."""
    data_dir = tmp_path / "data"
    prepared = prepared_data_dir(data_dir, {})
    repo, keystore = prepared.repo, prepared.keystore
    for code, name, role in ACCOUNTS.values():
        logins.set_password(repo, organisation_code=code, name=name, password=PASSWORD, role=role)
    app = create_app(
        Settings(data_dir=data_dir, public_url="http://testserver"), repo=repo, keystore=keystore
    )
    try:
        with TestClient(app) as agency:
            token = _login(agency, "agency")
            files = {
                "base_image_file": ("底图.png", ce.base_image_png(), "image/png"),
                "template_file": (
                    "模板.json",
                    json.dumps(ce.template(cramped=True)).encode(),
                    "application/json",
                ),
            }
            form = {"csrf_token": token, "document": json.dumps(ce.entry_document(), ensure_ascii=False)}
            checked = agency.post("/agency/catalogue", data={**form, "action": "check"}, files=files)
            assert checked.status_code == 200
            assert "已上传底图 asset:" in checked.text and "&#34;base_image&#34;: &#34;asset:" in checked.text
            row = re.search(
                r'<tr data-check="longest_values_fit" class="failed">.*?</tr>', checked.text, re.S
            )
            assert row and "未通过" in row.group(0) and "“工程名称”放不下" in row.group(0)
            assert 'id="face-preview"' not in checked.text  # nothing to preview: the face cannot be laid out
            submitted = agency.post("/agency/catalogue", data={**form, "action": "submit"}, files=files)
            assert submitted.status_code == 422 and 'id="entry-errors"' in submitted.text
            assert "“工程名称”放不下" in submitted.text and 'id="submitted"' not in submitted.text
            asset = re.search(r"asset:[0-9a-f]{64}", checked.text)
            assert asset and asset_digest(asset.group(0))

            document = ce.entry_document(base_image=asset.group(0))
            document["face_template"] = ce.template(cramped=True)
            register_entry(
                repo, CatalogueEntry.from_document(document), status="pending", submitted_by="agency:test"
            )
            bureau = TestClient(app)  # a second browser, beside the agency's (which runs the app's lifespan)
            token = _login(bureau, "bureau")
            listed = bureau.get("/bureau/catalogue")
            assert f'href="/bureau/catalogue/{ce.CODE}/1"' in listed.text
            page = bureau.get(f"/bureau/catalogue/{ce.CODE}/1")
            assert re.search(r'<button type="submit" class="primary" id="approve" disabled', page.text)
            assert "检查未全部通过，不能批准" in page.text
            refused = bureau.post(f"/bureau/catalogue/{ce.CODE}/1/approve", data={"csrf_token": token})
            assert refused.status_code == 422 and 'id="review-error"' in refused.text
            assert get_submission(repo, ce.CODE, 1).status == "pending"
            rejected = bureau.post(
                f"/bureau/catalogue/{ce.CODE}/1/reject",
                data={"csrf_token": token, "note": "工程名称放不下"},
                follow_redirects=False,
            )
            assert rejected.status_code == 303 and get_submission(repo, ce.CODE, 1).status == "rejected"
    finally:
        repo.db.dispose()
