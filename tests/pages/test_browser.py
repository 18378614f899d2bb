"""The pages in a real browser (Debian's Chromium through Playwright) against a real server: the window flow, a
tampered file dropped on the verification page, a third-party file, the QR page on a phone, a batch import with
a bad row, the agency form, the catalogue editor, the auditor page, and the knowledge scope (知悉范围).

Every test saves screenshots (see ``conftest.shot``); the folder is printed at the end of the run.
"""

from __future__ import annotations

import base64
import csv
import io
from pathlib import Path
from typing import Any

from certstore.checks import Indication
from certstore.crypto.trust import TrustStore
from certstore.keystore import KeyStore
from certstore.verify import verify_file
from tests.pages.conftest import ACCOUNTS, CONSTRUCTION, HOLDER_A, HOLDER_B, Site, login
from tests.support.matters import register_matter

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "third-party" / "ofd"
GREEN, RED, AMBER = "rgb(23, 111, 48)", "rgb(179, 38, 30)", "rgb(135, 90, 0)"  # ≥ 4.5:1 on their backgrounds


def _serve(page: Any, matter: str, holder_id: str, id_type: str = "001") -> None:
    page.fill("input[name=matter]", matter)
    page.select_option("select[name=holder_id_type]", id_type)
    page.fill("input[name=holder_id]", holder_id)
    page.click("button:has-text('查询证照')")
    page.wait_for_load_state()


def _registered(site: Site, matter: str, holder_id: str, id_type: str = "001") -> None:
    """The window's unit's case system registers ``matter`` for the holder (window look-ups need it, issue 19)."""
    register_matter(site.repo, ACCOUNTS["window"].organisation_code, matter, id_type, holder_id)


def _trust(site: Site) -> TrustStore:
    return KeyStore(site.data_dir / "keys").trust_store()


def test_window_login_lookup_verify_attach_and_print_copy(page: Any, site: Site, shot: Any) -> None:
    page.goto("/window")
    assert page.locator("h1").inner_text() == "工作人员登录"  # not logged in: the login form, status 401
    shot(page, "01-login")
    login(page, "window", "/window")
    assert page.url.endswith("/window")
    shot(page, "02-window-start")

    _registered(site, "ZZ-BROWSER-1", HOLDER_A.id_number)
    _serve(page, "ZZ-BROWSER-1", HOLDER_A.id_number)
    cards = page.locator("li.certificate")
    shown = [cards.nth(i).get_attribute("data-identifier") for i in range(cards.count())]
    assert {site.valid_a, site.suspended_a, site.revoked_a} <= set(shown) and site.valid_b not in shown
    badges = [cards.nth(i).locator(".badge").inner_text() for i in range(cards.count())]
    order = {"有效": 0, "挂起": 1, "吊销": 2}
    assert [order[b] for b in badges] == sorted(order[b] for b in badges) and badges[-2:] == ["挂起", "吊销"]
    assert HOLDER_A.id_number not in page.content()  # the number is masked on screen
    assert HOLDER_A.id_number not in page.url
    first = page.locator(f"li.certificate[data-identifier='{site.valid_a}']")
    page.wait_for_function(
        "() => [...document.querySelectorAll('li.certificate img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1366
    shot(page, "03-window-holder-1366x768", full_page=False)
    shot(page, "03-window-holder-full")

    first.locator("a:has-text('验证真伪')").click()
    page.wait_for_load_state()
    verdict = page.locator("#verdict")
    assert verdict.get_attribute("data-indication") == "VALID"
    assert "有效" in verdict.inner_text()
    assert page.evaluate("() => getComputedStyle(document.querySelector('#verdict')).color") == GREEN
    shot(page, "04-window-verify-valid")
    page.click("a:has-text('返回')")
    page.wait_for_load_state()

    page.locator(f"li.certificate[data-identifier='{site.valid_a}'] input[type=checkbox]").check()
    page.click("#attach")
    page.wait_for_load_state()
    assert "已关联办件 1 份" in page.locator(".case").inner_text()

    card = page.locator(f"li.certificate[data-identifier='{site.valid_a}']")
    card.locator("input[name=purpose]").fill("办理施工许可变更")
    with page.expect_download() as download_info:
        card.locator("button:has-text('打印副本')").click()
    download = download_info.value
    assert download.suggested_filename.endswith("-副本.ofd")
    copy = Path(download.path()).read_bytes()
    report = verify_file(copy, trust=_trust(site))
    assert report.indication is Indication.VALID
    assert report.certificate is not None and report.certificate.identifier == site.valid_a
    shot(page, "05-window-after-copy")


def test_dropping_a_tampered_file_shows_the_red_verdict(page: Any, site: Site, shot: Any) -> None:
    page.goto("/verify")
    shot(page, "06-verify-start")
    data = base64.b64encode(site.tampered.read_bytes()).decode("ascii")
    transfer = page.evaluate_handle(
        """([data, name]) => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: "application/ofd"}));
            return transfer;
        }""",
        [data, site.tampered.name],
    )
    page.dispatch_event("#dropzone", "dragenter", {"dataTransfer": transfer})
    with page.expect_navigation():
        page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})
    verdict = page.locator("#verdict")
    assert verdict.get_attribute("data-indication") == "INVALID"
    assert "无效" in verdict.inner_text() and "INVALID" in verdict.inner_text()
    assert "文件内容在盖章之后被修改过" in verdict.inner_text()
    assert page.evaluate("() => getComputedStyle(document.querySelector('#verdict')).color") == RED
    failed = page.locator("tr.check-failed").first.inner_text()
    assert "文件内容完整性" in failed and "未通过" in failed
    assert page.locator("#face-preview").count() == 0  # an invalid file's face is not shown
    assert HOLDER_A.id_number not in page.content()
    shot(page, "07-verify-tampered-invalid")


def test_a_third_party_file_is_verified_with_its_own_face(page: Any, site: Site, shot: Any) -> None:
    page.goto("/verify")
    page.set_input_files("#file", str(FIXTURES / "ofdrw-sign__v4signed.ofd"))
    with page.expect_navigation():
        page.click("button:has-text('开始验证')")
    verdict = page.locator("#verdict")
    assert verdict.get_attribute("data-indication") == "INDETERMINATE"
    assert "无法确认" in verdict.inner_text()
    assert page.evaluate("() => getComputedStyle(document.querySelector('#verdict')).color") == AMBER
    assert "不是本库登记" in page.content() or "未标注本库的证照标识" in page.content()
    preview = page.locator("#face-preview")
    assert preview.count() == 1 and (preview.get_attribute("src") or "").startswith("data:image/webp;base64,")
    shot(page, "08-verify-third-party-indeterminate")


def test_the_qr_page_fits_a_phone_and_shows_no_personal_data(phone_page: Any, site: Site, shot: Any) -> None:
    page = phone_page
    page.goto(f"/v/{site.valid_a}")
    assert page.locator("#qr-status").inner_text() == "有效"
    text = page.locator("main").inner_text()
    assert "建筑工程施工许可证" in text and "郑州市城乡建设局" in text
    assert HOLDER_A.name not in page.content() and HOLDER_A.id_number not in page.content()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    assert page.evaluate("() => document.fonts.check('16px \"WenQuanYi Micro Hei\"')") in (True, False)
    shot(page, "09-qr-phone-390x844", full_page=False)
    page.goto(f"/v/{site.revoked_a}")
    assert page.locator("#qr-status").inner_text() == "吊销"
    shot(page, "10-qr-phone-revoked", full_page=False)


def _template_rows(page: Any) -> tuple[list[str], list[str]]:
    with page.expect_download() as info:
        page.click("#template-link")
    text = Path(info.value.path()).read_bytes().decode("utf-8-sig")
    header, example = list(csv.reader(io.StringIO(text)))[:2]
    return header, example


def test_batch_import_reports_the_bad_row(page: Any, site: Site, shot: Any) -> None:
    login(page, "agency", "/agency")
    shot(page, "11-agency-home")
    page.click(f"a[href='/agency/types/{CONSTRUCTION}/batch']")
    page.wait_for_load_state()
    header, example = _template_rows(page)
    number = header.index("*证照编号(certificate_number)")
    rows = []
    for i, certificate_number in enumerate(["410100202406180301", "坏编号", "410100202406180303"]):
        row = list(example)
        row[number] = certificate_number
        rows.append(row)
        assert i < 3
    out = io.StringIO()
    csv.writer(out).writerows([header, *rows])
    upload = site.data_dir.parent / "batch.csv"
    upload.write_bytes(("\ufeff" + out.getvalue()).encode("utf-8"))
    page.set_input_files("#batch-file", str(upload))
    shot(page, "12-batch-upload")
    page.click("button:has-text('上传并导入')")
    page.wait_for_selector("#progress-line[data-finished='true']", timeout=30_000)
    assert "成功 2 · 失败 1 · 已完成" in page.locator("#progress-text").inner_text()
    rejected = page.locator("tr.status-rejected")
    assert rejected.count() == 1
    assert rejected.get_attribute("data-line") == "3"  # the second data row: line 3 of the CSV
    assert "certificate_number" in rejected.inner_text()
    assert page.locator("#progress").get_attribute("value") == "3"
    shot(page, "13-batch-one-bad-row")


def test_agency_form_catalogue_editor_and_auditor_pages(
    browser: Any, page: Any, site: Site, shot: Any
) -> None:
    login(page, "agency", "/agency")
    page.goto("/audit")  # the auditor's page: refused, a denial the auditor finds below (whatever ran before)
    assert "/audit" in page.url and page.locator("#audit-table").count() == 0
    page.goto(f"/agency/types/{CONSTRUCTION}/issue")
    # fill every input with its example (the placeholder), then one wrong value
    page.evaluate(
        """() => document.querySelectorAll('form.generated input, form.generated textarea').forEach(
            el => { if (!el.value && el.placeholder) el.value = el.placeholder; })"""
    )
    page.fill("input[name='certificate_number']", "410100202406180401")
    page.fill("input[name='issue_date']", "2026-11-26")
    page.fill("input[name='holder.id_number']", HOLDER_B.id_number)
    page.fill("input[name='face.contract_price']", "一万")
    shot(page, "14-agency-form")
    page.click("button:has-text('提交并签发')")
    page.wait_for_load_state()
    error = page.locator(".field[data-field='face.contract_price'] .field-error")
    assert error.count() == 1
    shot(page, "15-agency-form-field-error")
    page.fill("input[name='face.contract_price']", "18650.42")
    page.click("button:has-text('提交并签发')")
    page.wait_for_load_state()
    assert page.locator("#issued").inner_text().startswith("已签发")
    identifier = page.locator("#identifier").inner_text()
    assert ".11410100990000025A." in identifier
    page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
    shot(page, "16-agency-issued")

    page.goto(f"/agency/catalogue?code={CONSTRUCTION}")
    document = page.locator("textarea[name=document]").input_value()
    page.fill("textarea[name=document]", document.replace('"annual_inspection"', '"annual_inspection_x"', 1))
    page.click("button:has-text('提交审批')")
    page.wait_for_load_state()
    errors = page.locator("#entry-errors").inner_text()
    assert "annual_inspection" in errors
    shot(page, "17-catalogue-editor-errors")

    auditor = browser.new_context(
        base_url=site.base_url, locale="zh-CN", viewport={"width": 1366, "height": 768}
    )
    try:
        audit_page = auditor.new_page()
        login(audit_page, "auditor", "/audit")
        audit_page.select_option("select[name=outcome]", "deny")
        audit_page.click("#audit-filters button:has-text('查询')")
        audit_page.wait_for_load_state()
        rows = audit_page.locator("#audit-table tbody tr")
        assert rows.count() >= 1 and "拒绝" in rows.first.inner_text()
        assert HOLDER_A.id_number not in audit_page.content()
        shot(audit_page, "18-audit-denials")
        with audit_page.expect_download() as info:
            audit_page.click("#audit-filters button:has-text('导出 CSV')")
        exported = Path(info.value.path()).read_bytes().decode("utf-8-sig")
        assert "deny" in exported and "checkpoint" in exported.lower()  # the API's verifiable export
    finally:
        auditor.close()


def test_window_staff_see_only_the_holder_they_serve(browser: Any, page: Any, site: Site, shot: Any) -> None:
    login(page, "window", "/window")
    _registered(site, "ZZ-SCOPE-1", HOLDER_A.id_number)
    _registered(site, "ZZ-SCOPE-2", HOLDER_B.id_number)
    _serve(page, "ZZ-SCOPE-1", HOLDER_A.id_number)
    assert page.locator(f"li.certificate[data-identifier='{site.valid_a}']").count() == 1
    # holder B's certificate by URL while serving holder A: as if it did not exist (the API's rule)
    response = page.goto(f"/window/certificates/{site.valid_b}/verify")
    assert response is not None and response.status == 404
    assert "未找到" in page.locator("h1").inner_text()
    shot(page, "19-scope-other-holder-refused")
    response = page.goto(f"/window/certificates/{site.valid_b}/face.png")
    assert response is not None and response.status == 404

    # the matter registered for holder A does not serve holder B: refused
    page.goto("/window")
    page.click("button:has-text('结束办件')")
    page.wait_for_load_state()
    _serve(page, "ZZ-SCOPE-1", HOLDER_B.id_number)
    assert "registered for another holder" in page.locator(".error").inner_text()
    assert page.locator("li.certificate").count() == 0
    shot(page, "20-scope-matter-reused-refused")

    # the matter registered for holder B works, and then holder A's certificates are out of reach
    _serve(page, "ZZ-SCOPE-2", HOLDER_B.id_number)
    assert page.locator(f"li.certificate[data-identifier='{site.valid_b}']").count() == 1
    assert site.valid_a not in page.content() and site.suspended_a not in page.content()
    response = page.goto(f"/window/certificates/{site.valid_a}/face.png")
    assert response is not None and response.status == 404
    response = page.request.post(
        f"/window/certificates/{site.valid_a}/copy", form={"purpose": "x", "csrf_token": "forged"}
    )
    assert response.status == 403

    # another using unit without a case sees nothing either
    other = browser.new_context(base_url=site.base_url, locale="zh-CN")
    try:
        other_page = other.new_page()
        login(other_page, "other_window", "/window")
        response = other_page.goto(f"/window/certificates/{site.valid_a}/verify")
        assert response is not None and response.status == 403
        response = other_page.goto(f"/agency/types/{CONSTRUCTION}/issue")
        assert response is not None and response.status == 403
    finally:
        other.close()
