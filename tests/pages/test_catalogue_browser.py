"""Must show (issue 20 item 1), in Chromium against the real server: an agency uploads a base image and a face
template in the catalogue editor, sees the live preview of the longest example data and submits; an entry naming
another organisation's seal, or whose longest example overflows its box, is refused with the reason; the bureau
sees the checks and the preview and approves; a certificate of the new type is issued on the agency's form and
its file verifies (VALID)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from certstore.checks import Indication
from certstore.keystore import KeyStore
from certstore.verify import verify_file
from tests.pages.conftest import HOLDER_B, Site, login
from tests.support import catalogue_entries as ce

FOREIGN_SEAL = "11410100990000017F"  # the seal of 郑州市自然资源和规划局, another organisation


def _check_row(page: Any, name: str) -> Any:
    return page.locator(f"#check-results tr[data-check={name}]")


def _edit(page: Any, change: Any) -> None:
    """Change the entry document in the editor's textarea (as a person typing would: an input event)."""
    document = json.loads(page.locator("#entry-document").input_value())
    change(document)
    page.fill("#entry-document", json.dumps(document, ensure_ascii=False, indent=2))


def test_an_agency_designs_a_face_the_bureau_approves_it_and_its_certificate_verifies(
    browser: Any, page: Any, site: Site, shot: Any, tmp_path: Path
) -> None:
    image = tmp_path / "道路挖掘许可证底图.png"
    image.write_bytes(ce.base_image_png())
    template = tmp_path / "道路挖掘许可证模板.json"
    template.write_text(json.dumps(ce.template(cramped=True), ensure_ascii=False), encoding="utf-8")

    login(page, "agency", "/agency/catalogue")
    page.fill("#entry-document", json.dumps(ce.entry_document(), ensure_ascii=False, indent=2))
    page.set_input_files("#base-image-file", str(image))
    page.wait_for_function("() => document.querySelector('#entry-document').value.includes('asset:')")
    assert "已上传底图 asset:" in page.locator("#base-image-status").inner_text()
    page.set_input_files("#template-file", str(template))
    fit = _check_row(page, "longest_values_fit")
    fit.wait_for()
    # the live preview: the cramped template cannot hold the longest 工程名称
    assert "未通过" in fit.inner_text() and "“工程名称”放不下" in fit.inner_text()
    shot(page, "40-catalogue-overflow-live")
    page.click("button:has-text('提交审批')")
    page.wait_for_load_state()
    assert page.locator("#submitted").count() == 0
    assert "“工程名称”放不下" in page.locator("#entry-errors").inner_text()

    # the seal of another organisation, with a template that fits: refused with the reason
    _edit(page, lambda d: d.update(face_template=ce.template(), seal=FOREIGN_SEAL))
    page.click("button:has-text('提交审批')")
    page.wait_for_load_state()
    refused = page.locator("#entry-errors").inner_text()
    assert "印章归属" in refused and "不属于颁证单位" in refused and page.locator("#submitted").count() == 0
    shot(page, "41-catalogue-foreign-seal-refused")

    # the issuer's own seal: every check passes, the preview shows the face, and the submission is stored
    _edit(page, lambda d: d.update(seal="default"))
    page.wait_for_function(
        "() => document.querySelectorAll('#check-results .badge.ok').length === 5"
        " && document.querySelector('#face-preview img')?.naturalWidth > 0"
    )
    assert page.locator("#face-preview img").get_attribute("alt")
    shot(page, "42-catalogue-preview-passed")
    page.click("button:has-text('提交审批')")
    page.wait_for_load_state()
    assert "已提交，等待审批" in page.locator("#submitted").inner_text()

    bureau = browser.new_context(
        base_url=site.base_url, locale="zh-CN", viewport={"width": 1366, "height": 768}
    )
    try:
        review = bureau.new_page()
        login(review, "bureau", "/bureau/catalogue")
        review.click(f"#pending a[href='/bureau/catalogue/{ce.CODE}/1']")
        review.wait_for_load_state()
        assert review.locator("#check-results .badge.ok").count() == 5
        assert "印章属于颁证单位" in _check_row(review, "seal_owner").inner_text()
        review.wait_for_function("() => document.querySelector('#face-preview img').naturalWidth > 0")
        assert review.locator("#approve").is_enabled()
        shot(review, "43-catalogue-review")
        review.click("#approve")
        review.wait_for_load_state()
        assert "已批准" in review.locator("#review-status").inner_text()
    finally:
        bureau.close()

    page.goto(f"/agency/types/{ce.CODE}/issue")
    page.evaluate(
        """() => document.querySelectorAll('form.generated input, form.generated textarea').forEach(
            el => { if (!el.value && el.placeholder) el.value = el.placeholder; })"""
    )
    page.fill("input[name='certificate_number']", "郑挖字〔2026〕第0042号")
    page.fill("input[name='issue_date']", "2026-12-07")
    page.fill("input[name='holder.id_number']", HOLDER_B.id_number)
    page.fill("input[name='face.project_name']", ce.LONG_NAME)
    page.click("button:has-text('提交并签发')")
    page.wait_for_load_state()
    assert page.locator("#issued").inner_text().startswith("已签发")
    identifier = page.locator("#identifier").inner_text()
    assert f".{ce.CODE}." in identifier
    shot(page, "44-catalogue-new-type-issued")
    answer = page.request.get(f"/agency/certificates/{identifier}/file")
    assert answer.ok
    report = verify_file(answer.body(), trust=KeyStore(site.data_dir / "keys").trust_store())
    assert report.indication is Indication.VALID
    assert report.certificate is not None and report.certificate.identifier == identifier
