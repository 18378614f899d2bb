"""The holder's side in a real browser (Debian's Chromium through Playwright) against a real server (``certstore
serve``) and a real OpenID provider process (``oidc-provider-mock``): a company logs in by one ID (一号登录), sees
its certificates, authorises a using unit for a matter; a clerk of that unit lists the certificate under that
matter; a clerk of another unit, or the same clerk under a matter nobody registered, is refused; the company's
访问记录 shows the clerk's look-up. Screenshots as in test_browser.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from certstore.lifecycle import Action
from devservers.api import ApiServer
from devservers.ports import free_port
from tests.pages.conftest import (
    ACCOUNTS,
    CHROMIUM_ARGS,  # noqa: F401 — the browser fixture's flags (documented there)
    CONSTRUCTION,
    HOLDER_A,
    HOLDER_B,
    LAND_USE,
    _issue,
    _server_env,
    login,
    prepare_site,
)
from tests.servers.oidc import OidcProvider, oidc_provider
from tests.support import issuing

COMPANY_CLAIMS = {"org_name": HOLDER_A.name, "uscc": HOLDER_A.id_number, "agent_name": "李经办", "acr": "L3"}
MATTER = "ZZ-AUTH-BROWSER-1"


@dataclass
class HolderSite:
    base_url: str
    provider: OidcProvider
    valid: str
    land_use: str
    other_holder: str


@pytest.fixture(scope="module")
def holder_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HolderSite]:
    """A served data directory (dev keys, staff logins, certificates of two holders) whose holder login is the
    running provider."""
    with oidc_provider(users={"company": COMPANY_CLAIMS}) as provider:
        data_dir = tmp_path_factory.mktemp("holder-site") / "data"
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = _server_env(data_dir, base_url)
        env.update(
            {
                "CERTSTORE_OIDC_ISSUER": provider.issuer,
                "CERTSTORE_OIDC_CLIENT_ID": "certstore-zz",
                "CERTSTORE_OIDC_CLIENT_SECRET": "s3cret",
            }
        )
        app = prepare_site(data_dir, env, base_url)
        valid = _issue(app, CONSTRUCTION, "410100202406180101", HOLDER_A)
        land_use = _issue(app, LAND_USE, "地字第410100202400045号", HOLDER_A)
        issuing.act(app, land_use, Action.SUSPEND, reason="核查中")
        other = _issue(app, CONSTRUCTION, "410100202406180201", HOLDER_B)
        try:
            with ApiServer(data_dir, env=env, port=port):
                yield HolderSite(base_url, provider, valid, land_use, other)
        finally:
            app.repo.db.dispose()


def _page(browser: Any, site: HolderSite) -> Any:
    context = browser.new_context(
        base_url=site.base_url, locale="zh-CN", accept_downloads=True, viewport={"width": 1366, "height": 768}
    )
    context.set_default_timeout(15_000)
    return context.new_page()


def _look_up(page: Any, matter: str) -> None:
    page.goto("/window")
    page.fill("input[name=matter]", matter)
    page.select_option("select[name=holder_id_type]", "001")
    page.fill("input[name=holder_id]", HOLDER_A.id_number)
    page.click("button:has-text('查询证照')")
    page.wait_for_load_state()


def test_holder_logs_in_authorises_a_unit_and_sees_the_clerks_look_up(
    browser: Any, holder_site: HolderSite, shot: Any
) -> None:
    """The Must-show flow of issue 19, end to end in Chromium."""
    holder = _page(browser, holder_site)
    holder.goto("/holder")
    assert holder.locator("h1").inner_text().startswith("办事人登录")  # not logged in: the holder login page
    shot(holder, "h01-holder-login")
    holder.click("#oidc-login")
    holder.wait_for_load_state()
    assert holder.url.startswith(holder_site.provider.issuer + "/oauth2/authorize")
    shot(holder, "h02-provider-authorize")
    holder.fill("input[name=sub]", "company")
    holder.click("button:has-text('Authorize')")
    holder.wait_for_url(f"{holder_site.base_url}/holder")
    cards = holder.locator("li.certificate")
    shown = {cards.nth(i).get_attribute("data-identifier") for i in range(cards.count())}
    assert shown == {holder_site.valid, holder_site.land_use}
    assert "李经办" in holder.locator(".who").inner_text()
    assert "挂起" in holder.locator(f"li.certificate[data-identifier='{holder_site.land_use}']").inner_text()
    holder.wait_for_function(
        "() => [...document.querySelectorAll('li.certificate img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    shot(holder, "h03-my-certificates")

    holder.click(f"li.certificate[data-identifier='{holder_site.valid}'] a:has-text('详情与授权')")
    holder.wait_for_load_state()
    assert holder.locator("#qr").count() == 1
    with holder.expect_download() as download_info:
        holder.click("a:has-text('下载 OFD')")
    assert Path(download_info.value.path()).read_bytes()[:2] == b"PK"  # the sealed OFD (a ZIP package)
    form = holder.locator("#authorise-form")
    form.locator("input[name=using_unit]").fill(ACCOUNTS["window"].organisation_code)
    form.locator("input[name=matter]").fill(MATTER)
    form.locator("input[name=purpose]").fill("办理施工许可变更")
    shot(holder, "h04-authorise-form")
    form.locator("button:has-text('授权')").click()
    holder.wait_for_url(f"{holder_site.base_url}/holder/authorisations")
    row = holder.locator("#authorisations tbody tr").first
    assert MATTER in row.inner_text() and "有效" in row.inner_text()
    shot(holder, "h05-authorisations")

    clerk = _page(browser, holder_site)
    login(clerk, "window", "/window")
    _look_up(clerk, MATTER)
    listed = clerk.locator("li.certificate")
    assert [listed.nth(i).get_attribute("data-identifier") for i in range(listed.count())] == [
        holder_site.valid
    ]
    shot(clerk, "h06-clerk-lists-under-authorisation")
    clerk.click("button:has-text('结束办件')")
    clerk.wait_for_load_state()
    _look_up(clerk, "ZZ-INVENTED-9")
    assert clerk.locator("li.certificate").count() == 0
    assert "拒绝访问" in clerk.locator("p.error").inner_text()
    shot(clerk, "h07-clerk-invented-matter-refused")

    other = _page(browser, holder_site)
    login(other, "other_window", "/window")
    _look_up(other, MATTER)
    assert other.locator("li.certificate").count() == 0
    assert "拒绝访问" in other.locator("p.error").inner_text()
    shot(other, "h08-other-unit-refused")

    holder.click("a:has-text('访问记录')")
    holder.wait_for_load_state()
    rows = holder.locator("#access-log tbody tr")
    texts = [rows.nth(i).inner_text() for i in range(rows.count())]
    allowed = [
        t for t in texts if MATTER in t and ACCOUNTS["window"].organisation_name in t and "已获取" in t
    ]
    assert allowed, texts
    refused = [t for t in texts if "ZZ-INVENTED-9" in t and "被拒绝" in t]  # the refused case is shown too
    assert refused, texts
    assert HOLDER_A.id_number not in holder.content()
    shot(holder, "h09-access-log")

    holder.click("button:has-text('退出')")
    holder.wait_for_url(holder_site.provider.issuer + "/oauth2/end_session**")  # RP-initiated logout
    holder.goto("/holder")
    assert holder.locator("h1").inner_text().startswith("办事人登录")
    for page in (holder, clerk, other):
        page.context.close()
