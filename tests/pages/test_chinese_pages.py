"""Must show (issue 21 item 4): the verification results (a VALID and an INVALID file), the window page and the
audit page in Chinese in a real browser — no English detail text in the page body (a sentence of Latin words
outside identifiers and codes), times in Beijing time with the zone — and the audit table at 1366×768 with no cell
wrapped into more than two lines. Screenshots go to the test's own folder and to the session's screenshot folder
(``CERTSTORE_SCREENSHOTS`` under CI, see ``conftest.shot``)."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from certstore.timezones import CHINA_STANDARD_TIME
from tests.pages.conftest import ACCOUNTS, HOLDER_A, Site, login
from tests.support.matters import register_matter

#: Three or more Latin words in a row, each with a lower-case letter: an English sentence. Identifiers, paths,
#: digests and codes are single tokens; abbreviations ("SM3", "DER BIT STRING") are upper case.
WORD = r"(?=[A-Za-z]*[a-z])[A-Za-z]{2,}\b"
ENGLISH = re.compile(rf"\b{WORD}(?:[ ,;:]+{WORD}){{2,}}")
BEIJING = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})? \(北京时间\)")

#: The body's text without what is code by its markup (identifiers and commands in ``code``/``.mono``).
_BODY_TEXT = """() => {
    const body = document.body.cloneNode(true);
    body.querySelectorAll('code, .mono, kbd, script, style').forEach(e => e.remove());
    return body.innerText;
}"""

#: Lines of each audit-table cell: its content's height over the height of one line of the cell's font.
_CELL_LINES = """() => [...document.querySelectorAll('#audit-table tbody tr')].flatMap(row => [...row.cells].map(td => {
    const probe = document.createElement('div');
    probe.style.whiteSpace = 'nowrap';
    probe.textContent = '测';
    const wrap = document.createElement('div');
    while (td.firstChild) wrap.appendChild(td.firstChild);
    td.appendChild(wrap);
    td.appendChild(probe);
    const line = probe.getBoundingClientRect().height;
    const height = wrap.getBoundingClientRect().height;
    probe.remove();
    return {column: td.cellIndex, lines: height / line, text: wrap.innerText.slice(0, 60)};
}))"""


def _no_english(page: Any, where: str) -> str:
    text: str = page.evaluate(_BODY_TEXT)
    found = ENGLISH.findall(text)
    assert not found, f"{where}: English detail text on the page: {found[:5]}"
    return text


def _shots(page: Any, shot: Any, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    shot(page, name)


def _drop(page: Any, path: Path) -> None:
    """Drop ``path`` on the verification page's drop zone (as a person would) and wait for the result."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    transfer = page.evaluate_handle(
        """([data, name]) => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: "application/ofd"}));
            return transfer;
        }""",
        [data, path.name],
    )
    page.dispatch_event("#dropzone", "dragenter", {"dataTransfer": transfer})
    with page.expect_navigation():
        page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})


def test_verify_window_and_audit_pages_are_chinese_with_beijing_time(
    browser: Any, page: Any, site: Site, shot: Any, tmp_path: Path
) -> None:
    """A window clerk serves a holder (window page), verifies a valid certificate (VALID) and a tampered file
    (INVALID); an auditor reads the log: every page without English detail text, the audit table at 1366×768
    one or two lines per cell."""
    started = datetime.now(CHINA_STANDARD_TIME) - timedelta(seconds=2)  # the audit page shows from here on
    login(page, "window", "/window")
    register_matter(site.repo, ACCOUNTS["window"].organisation_code, "ZZ-ZH-1", "001", HOLDER_A.id_number)
    page.fill("input[name=matter]", "ZZ-ZH-1")
    page.select_option("select[name=holder_id_type]", "001")
    page.fill("input[name=holder_id]", HOLDER_A.id_number)
    page.click("button:has-text('查询证照')")
    page.wait_for_load_state()
    assert page.locator(f"li.certificate[data-identifier='{site.valid_a}']").count() == 1
    page.wait_for_function(
        "() => [...document.querySelectorAll('li.certificate img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    _no_english(page, "window")
    _shots(page, shot, tmp_path, "zh-01-window")

    page.locator(f"li.certificate[data-identifier='{site.valid_a}'] a:has-text('验证真伪')").click()
    page.wait_for_load_state()
    assert page.locator("#verdict").get_attribute("data-indication") == "VALID"
    text = _no_english(page, "VALID verification")
    assert "当前在电子证照库中的状态为「有效」" in text and "全部" in text and "引用文件摘要一致" in text
    assert BEIJING.search(text), "times in Beijing time with the zone"
    assert "+00:00" not in text and "T0" not in text
    _shots(page, shot, tmp_path, "zh-02-verify-valid")

    page.goto("/verify")
    _drop(page, site.tampered)
    assert page.locator("#verdict").get_attribute("data-indication") == "INVALID"
    text = _no_english(page, "INVALID verification")
    assert "文件内容在盖章之后被修改过" in text
    assert "摘要不一致，文件在签章后被修改过" in text  # the failed check's own reason, translated
    _shots(page, shot, tmp_path, "zh-03-verify-invalid")

    page.goto("/no/such/page")  # an unrouted request: "GET (no route)" in the log
    page.goto("/audit")  # the window clerk may not read the log: a denial in the log

    auditor = browser.new_context(
        base_url=site.base_url, locale="zh-CN", viewport={"width": 1366, "height": 768}
    )
    try:
        audit = auditor.new_page()
        login(audit, "auditor", "/audit")
        audit.goto(f"/audit?from={started:%Y-%m-%dT%H:%M:%S}")  # this test's entries, whatever ran before
        rows = audit.locator("#audit-table tbody tr")
        assert rows.count() >= 5
        text = _no_english(audit, "audit")
        assert "GET 请求：地址不存在" in text and "(no route)" not in text
        assert "窗口查询持证人证照" in text and "拒绝" in text
        audit.screenshot(path=str(tmp_path / "zh-04-audit-1366x768.png"))  # the screen as the auditor sees it
        shot(audit, "zh-04-audit-1366x768", full_page=False)
        cells = audit.evaluate(_CELL_LINES)
        too_tall = [c for c in cells if c["lines"] > 2.5]
        assert not too_tall, f"audit cells wrapped into more than two lines: {too_tall[:5]}"
        assert audit.evaluate("() => document.documentElement.scrollWidth") <= 1366
    finally:
        auditor.close()
