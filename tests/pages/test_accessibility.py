"""Accessibility and weight of the pages (issue 21 item 9; WCAG 2.1 AA / GB/T 37668; docs/pages.md): axe-core
(npm, pinned in the Makefile's test stamp) run in Chromium over every page and state — verification results
VALID and INVALID, form errors, the window list with a card not in force and a refused attach, the audit log, the
holder's pages, phone width — with 0 violations (and, on a phone, header targets ≥ 44 px); the verification
result on a phone weighs under 100 KB in transferred bytes; gzip, cache headers and the icon. One server (the
session's ``site``), one browser, one browser context per role.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from certstore.identifiers import HolderIdType
from certstore.services import certificates, holders, logins
from tests.pages.conftest import ACCOUNTS, CONSTRUCTION, HOLDER_A, HOLDER_B, PASSWORD, Site
from tests.support.matters import register_matter

REPO = Path(__file__).resolve().parents[2]
AXE_JS = Path(os.environ.get("CERTSTORE_AXE_JS") or REPO / ".npm-tools/node_modules/axe-core/axe.min.js")
MATTER = "ZZ-A11Y-1"
#: The verification result on a phone, everything the browser fetched for it (HTML, CSS, icon, face) — issue 21.
PHONE_RESULT_BUDGET = 100_000

PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
DESKTOP = {"viewport": {"width": 1366, "height": 768}}


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE_JS.exists():
        pytest.fail(f"{AXE_JS} is missing: run `make test` (its stamp installs the npm package axe-core)")
    return AXE_JS.read_text("utf-8")


class Browsers:
    """One browser context per role, made and logged in on first use, closed at the end; a phone state narrows
    its viewport to the phone's (390 px)."""

    def __init__(self, browser: Any, site: Site, axe_source: str) -> None:
        self.browser, self.site, self.axe_source = browser, site, axe_source
        self.contexts: dict[str, Any] = {}

    def page(self, role: str, screen: str = "desktop") -> Any:
        if role not in self.contexts:
            context = axe_context(self.browser, self.site, self.axe_source, DESKTOP)
            page = context.new_page()
            self.contexts[role] = page
            if role in ACCOUNTS:
                _login(page, role)
            elif role == "holder":
                _holder_cookie(context, self.site)
        page = self.contexts[role]
        page.set_viewport_size((PHONE if screen == "phone" else DESKTOP)["viewport"])
        return page

    def close(self) -> None:
        for page in self.contexts.values():
            page.context.close()


@pytest.fixture(scope="module")
def browsers(browser: Any, site: Site, axe_source: str) -> Iterator[Browsers]:
    register_matter(site.repo, ACCOUNTS["window"].organisation_code, MATTER, "001", HOLDER_A.id_number)
    made = Browsers(browser, site, axe_source)
    try:
        yield made
    finally:
        made.close()


def axe_context(browser: Any, site: Site, axe_source: str, screen: dict[str, Any]) -> Any:
    """A browser context at ``screen`` whose every page has axe-core loaded (through DevTools: the pages' CSP
    allows no inline script)."""
    context = browser.new_context(base_url=site.base_url, locale="zh-CN", **screen)
    context.set_default_timeout(15_000)
    context.add_init_script(script=axe_source)
    return context


def _login(page: Any, who: str) -> None:
    account = ACCOUNTS[who]
    page.goto("/login")
    page.fill("input[name=organisation_code]", account.organisation_code)
    page.fill("input[name=name]", account.name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('登录')")
    page.wait_for_load_state()


def _holder_cookie(context: Any, site: Site) -> None:
    """A logged-in company (一号登录 is tested in test_holder_browser.py; here only its pages matter)."""
    identity = holders.HolderIdentity(
        "legal", HOLDER_A.name, HolderIdType.CREDIT_CODE, HOLDER_A.id_number, agent_name="李经办", acr="L3"
    )
    token, _ = holders.start_session(site.repo, logins.session_key(site.data_dir), identity)
    context.add_cookies([{"name": "certstore_holder", "value": token, "url": site.base_url}])


def _violations(page: Any) -> list[str]:
    found = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations.map(
            v => `${v.id} (${v.impact}): ${v.help} — ` + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))"""
    )
    return list(found)


def _stored_file(site: Site, tmp: Path) -> Path:
    path = tmp / "施工许可证.ofd"
    if not path.exists():
        stored = certificates.get(site.repo, site.valid_a)
        assert stored.file_key is not None
        path.write_bytes(site.repo.blobs.get(stored.file_key))
    return path


def _verify(page: Any, file: Path) -> None:
    page.goto("/verify")
    page.set_input_files("#file", str(file))
    with page.expect_navigation():
        page.click("#verify-form button[type=submit]")


def _serve(page: Any) -> None:
    page.goto("/window")
    if page.locator("#serve-form").count():
        page.fill("input[name=matter]", MATTER)
        page.fill("input[name=holder_id]", HOLDER_A.id_number)
        page.click("#serve-form button[type=submit]")
        page.wait_for_load_state()


def _agency_errors(page: Any) -> None:
    page.goto(f"/agency/types/{CONSTRUCTION}/issue")
    page.fill("input[name='face.contract_price']", "一万")
    page.click("form.generated button[type=submit]")
    page.wait_for_load_state()
    assert page.locator("#form-errors a").count() >= 1
    assert page.locator("[aria-invalid=true]").count() >= 1


def _agency_issued(page: Any) -> None:
    page.goto(f"/agency/types/{CONSTRUCTION}/issue")
    page.evaluate(
        """() => document.querySelectorAll('form.generated input, form.generated textarea').forEach(
            el => { if (!el.value && el.placeholder) el.value = el.placeholder; })"""
    )
    page.fill("input[name='certificate_number']", "410100202406180499")
    page.fill("input[name='issue_date']", "2026-11-26")
    page.fill("input[name='holder.id_number']", HOLDER_B.id_number)
    page.click("form.generated button[type=submit]")
    page.wait_for_load_state()
    assert page.locator("#issued").count() == 1


def _holder_logout(page: Any) -> None:
    page.goto("/holder")
    page.click("form[action='/holder/logout'] button")
    page.wait_for_load_state()


def _attach_refused(page: Any, site: Site) -> None:
    _serve(page)
    page.evaluate("id => document.querySelector(`input[value='${id}']`).disabled = false", site.revoked_a)
    page.check(f"input[value='{site.revoked_a}']")
    page.click("#attach")
    page.wait_for_load_state()
    assert "非现行有效" in page.locator("#window-error").inner_text()


#: name → (role, screen, what to do before axe runs). Every page template and its states; the VALID result (at
#: phone width) is checked by the weight test, the window's list by its refused attach (the list and the error),
#: the agency's form by its errors, the home page by the self-check.
STATES: dict[str, tuple[str, str, Callable[[Any, Site, Path], None]]] = {
    "login": ("anonymous", "desktop", lambda p, s, t: p.goto("/login")),
    "login-failed": ("anonymous", "desktop", lambda p, s, t: _failed_login(p)),
    "verify-form": ("anonymous", "desktop", lambda p, s, t: p.goto("/verify")),
    "verify-invalid": ("anonymous", "desktop", lambda p, s, t: _verify(p, s.tampered)),
    "verify-unreadable": ("anonymous", "desktop", lambda p, s, t: _verify(p, _junk(t))),
    "qr-valid": ("anonymous", "phone", lambda p, s, t: p.goto(f"/v/{s.valid_a}")),
    "qr-revoked": ("anonymous", "phone", lambda p, s, t: p.goto(f"/v/{s.revoked_a}")),
    "not-found": ("anonymous", "desktop", lambda p, s, t: p.goto("/v/no-such-certificate")),
    "holder-login": ("anonymous", "desktop", lambda p, s, t: p.goto("/holder/login")),
    "window-start": ("window", "desktop", lambda p, s, t: p.goto("/window")),
    "window-attach-refused": ("window", "desktop", lambda p, s, t: _attach_refused(p, s)),
    "window-verify": (
        "window",
        "desktop",
        lambda p, s, t: p.goto(f"/window/certificates/{s.valid_a}/verify"),
    ),
    "phone-window-list": ("window", "phone", lambda p, s, t: _serve(p)),
    "agency-home": ("agency", "desktop", lambda p, s, t: p.goto("/agency")),
    "agency-form-errors": ("agency", "desktop", lambda p, s, t: _agency_errors(p)),
    "agency-issued": ("agency", "desktop", lambda p, s, t: _agency_issued(p)),
    "agency-batch": ("agency", "desktop", lambda p, s, t: p.goto(f"/agency/types/{CONSTRUCTION}/batch")),
    "agency-catalogue": (
        "agency",
        "desktop",
        lambda p, s, t: p.goto(f"/agency/catalogue?code={CONSTRUCTION}"),
    ),
    "bureau-catalogue": ("bureau", "desktop", lambda p, s, t: p.goto("/bureau/catalogue")),
    "audit-log": ("auditor", "desktop", lambda p, s, t: p.goto("/audit?outcome=deny")),  # one page of rows
    "holder-certificates": ("holder", "desktop", lambda p, s, t: p.goto("/holder")),
    "holder-certificate": ("holder", "desktop", lambda p, s, t: p.goto(f"/holder/certificates/{s.valid_a}")),
    "holder-access": ("holder", "desktop", lambda p, s, t: p.goto("/holder/access")),
    "holder-authorisations": ("holder", "desktop", lambda p, s, t: p.goto("/holder/authorisations")),
    "holder-reviews": ("holder", "desktop", lambda p, s, t: p.goto("/holder/reviews")),
    "holder-settings": ("holder", "desktop", lambda p, s, t: p.goto("/holder/settings")),
    "phone-holder-certificates": ("holder", "phone", lambda p, s, t: p.goto("/holder")),
    "holder-logged-out": ("holder", "desktop", lambda p, s, t: _holder_logout(p)),
}


def _failed_login(page: Any) -> None:
    page.goto("/login")
    page.fill("input[name=organisation_code]", ACCOUNTS["window"].organisation_code)
    page.fill("input[name=name]", "无此人")
    page.fill("input[name=password]", "wrong-password-1")
    page.click("button:has-text('登录')")
    page.wait_for_load_state()


def _junk(tmp: Path) -> Path:
    path = tmp / "不是证照.ofd"
    path.write_bytes(b"not an OFD file at all")
    return path


def test_axe_runs_and_finds_an_injected_fault(browsers: Browsers) -> None:
    """The check itself: the home page has no violation; with a grey-on-white line and an unlabelled input added,
    axe reports both (so 0 violations below means axe ran and found nothing)."""
    page = browsers.page("anonymous")
    page.goto("/")
    assert page.locator("h1").count() == 1 and _violations(page) == []
    page.evaluate(
        """() => {
            const main = document.querySelector('main');
            main.insertAdjacentHTML('beforeend', '<p id="pale">浅灰文字</p><input type="text">');
            document.getElementById('pale').style.color = '#aaa';  // CSSOM: the CSP allows no style attribute
        }"""
    )
    found = {line.split(" ")[0] for line in _violations(page)}
    assert {"color-contrast", "label"} <= found


@pytest.mark.parametrize("state", list(STATES))
def test_axe_finds_no_violations(
    state: str, browsers: Browsers, site: Site, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """axe-core's rules (WCAG 2.1 A/AA and best practices) on one page state: no violation."""
    role, screen, go = STATES[state]
    page = browsers.page(role, screen)
    go(page, site, tmp_path_factory.getbasetemp())
    page.wait_for_load_state()
    assert page.locator("h1").count() == 1, page.url  # one main heading (a result's is its verdict)
    logged_in = role != "anonymous" and state != "holder-logged-out"
    assert page.locator("form[action$='/logout']").count() == logged_in, page.url
    assert _violations(page) == [], page.url
    if screen == "phone":
        _touch_targets(page)


def _touch_targets(page: Any) -> None:
    """On a phone the header's links and 退出 are ≥ 44 px tall, and 退出 is on a row above the navigation."""
    boxes = page.evaluate(
        """() => [...document.querySelectorAll('header.top nav a, header.top .who a, header.top .who button')]
            .map(e => [e.textContent.trim(), e.getBoundingClientRect().height])"""
    )
    assert boxes and all(height >= 44 for _, height in boxes), boxes
    logout = page.locator("header.top .who button")
    if logout.count():
        nav = page.locator("header.top nav").bounding_box()
        assert logout.bounding_box()["y"] + logout.bounding_box()["height"] <= nav["y"] + 1


def test_the_verification_result_on_a_phone_weighs_under_100_kb(
    browser: Any, site: Site, axe_source: str, tmp_path: Path
) -> None:
    """Everything a phone fetches for the result of verifying a certificate (a fresh browser: nothing cached) —
    the page, its stylesheet and icon, the face — in transferred bytes, under 100 KB; the face is a sized WebP,
    not a PNG, its text alternative the key fields; axe finds nothing on it at phone size."""
    context = axe_context(browser, site, axe_source, PHONE)
    try:
        page = context.new_page()
        fetched: list[tuple[str, int]] = []
        page.on("requestfinished", lambda r: fetched.append((r.url, _transferred(r))))
        _verify(page, _stored_file(site, tmp_path))  # the form page too: its stylesheet, script and icon
        page.wait_for_load_state("networkidle")
        assert page.locator("#verdict").get_attribute("data-indication") == "VALID"
        face = page.locator("#face-preview")
        assert (face.get_attribute("src") or "").startswith("data:image/webp;base64,")
        assert "证照编号 " in (face.get_attribute("alt") or "")
        total = sum(size for _, size in fetched)
        assert sum(url.endswith("/verify") for url, _ in fetched) == 2  # the form and the result
        assert total < PHONE_RESULT_BUDGET, fetched
        assert _violations(page) == []
        _touch_targets(page)
    finally:
        context.close()


def _transferred(request: Any) -> int:
    sizes = request.sizes()
    return int(sizes["responseHeadersSize"]) + int(sizes["responseBodySize"])


def test_gzip_cache_headers_and_icon(site: Site) -> None:
    """Pages are gzipped; a versioned stylesheet is cached for a year, an unversioned one an hour, both
    revalidated by ETag (304); /favicon.ico answers."""
    with httpx.Client(base_url=site.base_url, headers={"Accept-Encoding": "gzip"}) as client:
        page = client.get("/verify")
        assert (
            page.headers["content-encoding"] == "gzip" and "accept-encoding" in page.headers["vary"].lower()
        )
        link = re.search(r'<link rel="stylesheet" href="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        assert link.startswith("/static/site.css?v=")
        versioned = client.get(link)
        assert versioned.headers["cache-control"] == "public, max-age=31536000, immutable"
        plain = client.get("/static/site.css")
        assert plain.headers["cache-control"] == "public, max-age=3600"
        again = client.get("/static/site.css", headers={"If-None-Match": plain.headers["etag"]})
        assert again.status_code == 304
        icon = client.get("/favicon.ico")
        assert icon.status_code == 200 and icon.headers["content-type"] == "image/vnd.microsoft.icon"
        assert "content-encoding" not in icon.headers
