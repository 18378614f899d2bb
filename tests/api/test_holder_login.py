"""The holder login (一号登录) against a real OpenID provider process (``oidc-provider-mock`` on loopback,
tests/servers/oidc.py): the code flow through the application's pages, and every way an ID token or a callback
is refused — wrong audience, expired, bad signature (a key the provider does not publish, ``alg: none``, HMAC),
nonce replay and a replayed callback, a state from another browser, an assurance level below the minimum.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import func, select

from api import create_app, ratelimit
from api.oidc import LEEWAY, IdTokenError, OidcSettings, RelyingParty
from api.pages.holder import HOLDER_COOKIE, LOGIN_COOKIE
from api.ratelimit import TokenBuckets
from api.settings import Settings
from certstore.audit import AuditQuery, query_entries
from certstore.identifiers import HolderIdType, holder_id_digest, holder_ref
from certstore.keystore import KeyStore
from certstore.store.models import HolderLoginAttemptRow
from certstore.store.repository import Repository
from tests.servers.oidc import OidcProvider, oidc_provider

#: Tests whose database work is the same on both backends run on SQLite only (the file stays fast); the
#: login, the replay and the session tests run on PostgreSQL too.
SQLITE_ONLY = pytest.mark.parametrize("database_backend", ["sqlite"])

PUBLIC = "https://certs.example"
CLIENT_ID = "certstore-city"
PERSON = {
    "name": "张三",
    "id_type": "111",
    "id_number": "11010519491231002X",
    "acr": "L2",
    "email": "zhangsan@example.cn",
    "email_verified": True,
}
COMPANY = {
    "org_name": "郑州示例置业有限公司",
    "uscc": "91410100MA44A1B2XW",
    "agent_name": "李经办",
    "acr": "L3",
}


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with oidc_provider(users={"zhangsan": PERSON, "company": COMPANY}) as running:
        running.set_user("unverified", {**PERSON, "acr": "L1"})
        yield running


def holder_settings(data_dir: Path, issuer: str, **extra: str) -> Settings:
    oidc = {
        "CERTSTORE_OIDC_ISSUER": issuer,
        "CERTSTORE_OIDC_CLIENT_ID": CLIENT_ID,
        "CERTSTORE_OIDC_CLIENT_SECRET": "s3cret",
        **extra,
    }
    return Settings(data_dir=data_dir, public_url=PUBLIC, oidc=tuple(sorted(oidc.items())))


@pytest.fixture
def holder_app(api_repo: Repository, api_keystore: KeyStore, tmp_path: Path, provider: OidcProvider) -> Any:
    return create_app(holder_settings(tmp_path, provider.issuer), repo=api_repo, keystore=api_keystore)


@pytest.fixture
def browser(holder_app: Any) -> Iterator[TestClient]:
    with TestClient(holder_app, base_url=PUBLIC, raise_server_exceptions=False) as client:
        yield client


def start(browser: TestClient) -> str:
    """Press 一号登录: the provider's authorization URL our request goes to."""
    response = browser.get("/holder/login/start", follow_redirects=False)
    assert response.status_code == 303, response.text
    return response.headers["location"]


def callback(browser: TestClient, url: str) -> httpx.Response:
    return browser.get(url.removeprefix(PUBLIC), follow_redirects=False)


def log_in(browser: TestClient, provider: OidcProvider, sub: str) -> httpx.Response:
    return callback(browser, provider.authorize(start(browser), sub))


def relying_party(provider: OidcProvider) -> RelyingParty:
    settings = OidcSettings(provider.issuer, CLIENT_ID, "s3cret", PUBLIC + "/holder/login/callback")
    return RelyingParty(settings)


def login_entries(repo: Repository, outcome: str) -> list[Any]:
    page = query_entries(repo.db, AuditQuery(action="holder.login", outcome=outcome), limit=100)
    return [e.event for e in page.entries]


@SQLITE_ONLY
def test_the_authorization_request_carries_state_nonce_and_a_pkce_challenge(
    browser: TestClient, provider: OidcProvider
) -> None:
    """The browser goes to the discovered authorization endpoint with our client, redirect URI, scope, a state,
    a nonce and an S256 code challenge; the pending login is this browser's HttpOnly, Secure, SameSite cookie."""
    response = browser.get("/holder/login/start", follow_redirects=False)
    url = httpx.URL(response.headers["location"])
    assert str(url).startswith(provider.issuer + "/oauth2/authorize")
    params = url.params
    assert params["client_id"] == CLIENT_ID and params["response_type"] == "code"
    assert params["redirect_uri"] == PUBLIC + "/holder/login/callback"
    assert "openid" in params["scope"].split()
    assert len(params["state"]) >= 20 and len(params["nonce"]) >= 40
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(LOGIN_COOKIE))
    assert "HttpOnly" in cookie and "Secure" in cookie and "samesite=lax" in cookie.lower()


def test_a_person_logs_in_and_the_session_cookie_is_protected(
    browser: TestClient, provider: OidcProvider, api_repo: Repository
) -> None:
    """A real-name-verified person logs in: a holder session cookie (HttpOnly, Secure, SameSite=Lax), the pending
    login's cookie cleared, the holder known by the keyed reference of their ID, the verified e-mail kept as the
    notification contact; the login is audited."""
    response = log_in(browser, provider, "zhangsan")
    assert response.status_code == 303 and response.headers["location"] == "/holder"
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith(HOLDER_COOKIE + "="))
    assert "HttpOnly" in session and "Secure" in session and "samesite=lax" in session.lower()
    assert any(c.startswith(LOGIN_COOKIE + '=""') for c in cookies)
    page = browser.get("/holder/settings")
    assert page.status_code == 200 and "张三（证照持有人）" in page.text
    assert PERSON["id_number"] not in page.text
    assert 'value="zhangsan@example.cn"' in page.text  # the verified e-mail claim became the contact
    reference = holder_ref(
        holder_id_digest(api_repo.holder_key, HolderIdType.RESIDENT_ID, PERSON["id_number"])
    )
    settle_repo(api_repo)
    [entry] = login_entries(api_repo, "allow")
    assert entry.principal == f"holder:{reference}" and entry.role == "holder"
    assert entry.holder_digest == reference and entry.details["acr"] == "L2"


def settle_repo(repo: Repository) -> None:
    from certstore.audit import chain_pending

    chain_pending(repo.db)


@SQLITE_ONLY
def test_a_legal_person_logs_in_with_its_credit_code_and_acting_person(
    browser: TestClient, provider: OidcProvider, api_repo: Repository
) -> None:
    """A company logs in by its USCC: the holder is the company (reference of the credit code), acting through
    the agent named in the claims."""
    assert log_in(browser, provider, "company").status_code == 303
    token = browser.post("/api/v1/holder/tokens", json={"label": "erp"}).json()["token"]
    me = browser.get("/api/v1/holder/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["kind"] == "legal" and me["name"] == COMPANY["org_name"] and me["agent_name"] == "李经办"
    assert me["holder_ref"] == holder_ref(
        holder_id_digest(api_repo.holder_key, HolderIdType.CREDIT_CODE, COMPANY["uscc"])
    )


@SQLITE_ONLY
def test_an_account_below_the_assurance_minimum_is_refused_with_a_clear_page(
    browser: TestClient, provider: OidcProvider, api_repo: Repository
) -> None:
    """acr L1 (registered, not real-name verified) is below the default minimum L2: 403, the page says to complete
    real-name verification, no session; the refusal is audited."""
    response = log_in(browser, provider, "unverified")
    assert response.status_code == 403
    assert "实名认证" in response.text and "L1" in response.text
    assert not any(
        c.startswith(HOLDER_COOKIE + "=") and "Max-Age=0" not in c
        for c in response.headers.get_list("set-cookie")
    )
    assert browser.get("/holder", follow_redirects=False).status_code == 401
    settle_repo(api_repo)
    assert any("L1" in (e.reason or "") for e in login_entries(api_repo, "deny"))


def test_a_replayed_callback_is_refused(browser: TestClient, provider: OidcProvider) -> None:
    """The provider's answer replayed — same state, code and login cookie — is refused: the pending login is
    used once (marked before the code is exchanged)."""
    url = provider.authorize(start(browser), "zhangsan")
    pending = browser.cookies.get(LOGIN_COOKIE)
    assert callback(browser, url).status_code == 303
    browser.cookies.set(LOGIN_COOKIE, pending, domain="certs.example")
    replayed = callback(browser, url)
    assert replayed.status_code == 401 and "已使用" in replayed.text


@SQLITE_ONLY
def test_a_callback_in_another_browser_is_refused(
    holder_app: Any, browser: TestClient, provider: OidcProvider
) -> None:
    """A login response carried to another browser (login CSRF: an attacker's code in a victim's browser) does
    not match that browser's pending login."""
    url = provider.authorize(start(browser), "zhangsan")
    with TestClient(holder_app, base_url=PUBLIC, raise_server_exceptions=False) as other:
        start(other)  # a pending login of its own, another state
        refused = callback(other, url)
        assert refused.status_code == 401 and HOLDER_COOKIE not in refused.headers.get("set-cookie", "")


@SQLITE_ONLY
def test_the_holder_declining_at_the_provider_is_no_login(
    browser: TestClient, provider: OidcProvider
) -> None:
    """The provider answers ``error=access_denied``: no session, the login page again with the refusal."""
    url = start(browser)
    denied = httpx.post(url, data={"action": "deny"}, follow_redirects=False, timeout=10)
    assert "error=access_denied" in denied.headers["location"]
    response = callback(browser, denied.headers["location"])
    assert response.status_code == 401 and "登录未成功" in response.text
    assert HOLDER_COOKIE not in response.headers.get("set-cookie", "")
    assert browser.get("/holder", follow_redirects=False).status_code == 401


def test_an_id_token_for_another_client_is_refused(provider: OidcProvider) -> None:
    """Wrong audience: a genuine ID token the provider issued to another client (with our nonce) is refused."""
    tokens = provider.token(
        client_id="another-rp", sub="zhangsan", redirect_uri="https://other.example/cb", nonce="n-1"
    )
    rp = relying_party(provider)
    with pytest.raises(IdTokenError, match="aud"):
        rp.validate_id_token(tokens["id_token"], nonce="n-1", now=datetime.now(UTC))


def test_an_expired_id_token_is_refused(provider: OidcProvider) -> None:
    """A genuine ID token for us is accepted now and refused once the clock has passed its ``exp`` (leeway
    included)."""
    tokens = provider.token(client_id=CLIENT_ID, sub="zhangsan", redirect_uri=PUBLIC + "/cb", nonce="n-2")
    rp = relying_party(provider)
    now = datetime.now(UTC)
    claims = rp.validate_id_token(tokens["id_token"], nonce="n-2", now=now)
    assert claims["id_number"] == PERSON["id_number"] and claims["aud"] in (CLIENT_ID, [CLIENT_ID])
    later = datetime.fromtimestamp(claims["exp"], UTC) + timedelta(seconds=LEEWAY + 1)
    with pytest.raises(IdTokenError, match=r"expired|exp"):
        rp.validate_id_token(tokens["id_token"], nonce="n-2", now=later)


def test_a_replayed_nonce_is_refused(provider: OidcProvider) -> None:
    """An ID token made for another login (its nonce) is refused for this one."""
    tokens = provider.token(
        client_id=CLIENT_ID, sub="zhangsan", redirect_uri=PUBLIC + "/cb", nonce="old-nonce"
    )
    with pytest.raises(IdTokenError, match="nonce"):
        relying_party(provider).validate_id_token(
            tokens["id_token"], nonce="this-login", now=datetime.now(UTC)
        )


def _forged(provider: OidcProvider, *, kid: str | None, nonce: str) -> str:
    """An ID token with every claim right, signed with a key the provider does not publish."""
    key = RSAKey.generate_key(2048)
    now = int(time.time())
    claims = {
        "iss": provider.issuer,
        "aud": CLIENT_ID,
        "sub": "zhangsan",
        "iat": now,
        "exp": now + 300,
        "nonce": nonce,
        **PERSON,
    }
    header = {"alg": "RS256", **({"kid": kid} if kid else {})}
    return jwt.encode(header, claims, key)


def test_a_token_signed_with_an_unpublished_key_is_refused(provider: OidcProvider) -> None:
    """Bad signature: the provider's key id on a token signed with another key, or a key id nobody publishes
    (the JWKS is fetched again once, then refused)."""
    published = httpx.get(provider.issuer + "/jwks", timeout=10).json()["keys"][0]
    rp = relying_party(provider)
    for kid in (published.get("kid"), "not-published"):
        with pytest.raises(IdTokenError, match="signature"):
            rp.validate_id_token(_forged(provider, kid=kid, nonce="n-3"), nonce="n-3", now=datetime.now(UTC))


def test_unsigned_and_hmac_tokens_are_refused(provider: OidcProvider) -> None:
    """``alg: none`` and an HMAC keyed with anything are never accepted (only the provider's asymmetric
    algorithms)."""
    import base64
    import json

    now = int(time.time())
    claims = {
        "iss": provider.issuer,
        "aud": CLIENT_ID,
        "sub": "x",
        "iat": now,
        "exp": now + 300,
        "nonce": "n",
        **PERSON,
    }

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    unsigned = f"{part({'alg': 'none'})}.{part(claims)}."
    from joserfc.jwk import OctKey

    hmac_token = jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(b"k" * 32))
    rp = relying_party(provider)
    for token in (unsigned, hmac_token):
        with pytest.raises(IdTokenError):
            rp.validate_id_token(token, nonce="n", now=datetime.now(UTC))


def test_logout_ends_the_session_here_and_at_the_provider(
    browser: TestClient, provider: OidcProvider
) -> None:
    """退出: the holder session ends (the cookie no longer opens a page) and the browser goes to the provider's
    end-session endpoint with the ID token hint, our client id and where to come back."""
    assert log_in(browser, provider, "zhangsan").status_code == 303
    page = browser.get("/holder/settings")
    csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    token = browser.cookies.get(HOLDER_COOKIE)
    response = browser.post("/holder/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert response.status_code == 200 and "您已退出本系统" in response.text
    link = response.text.split('id="provider-logout" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    target = httpx.URL(link)
    assert str(target).startswith(provider.issuer + "/oauth2/end_session")
    assert target.params["client_id"] == CLIENT_ID and target.params["id_token_hint"].count(".") == 2
    assert target.params["post_logout_redirect_uri"] == PUBLIC + "/holder/login"
    browser.cookies.set(HOLDER_COOKIE, token, domain="certs.example")
    assert browser.get("/holder", follow_redirects=False).status_code == 401


@SQLITE_ONLY
def test_a_post_without_the_holder_csrf_token_is_refused(browser: TestClient, provider: OidcProvider) -> None:
    """The holder's forms carry a CSRF token bound to the holder session."""
    assert log_in(browser, provider, "zhangsan").status_code == 303
    assert browser.post("/holder/logout", data={"csrf_token": "0" * 64}).status_code == 403
    assert browser.post("/holder/logout", data={}).status_code == 403


@SQLITE_ONLY
def test_without_a_configured_provider_there_is_no_holder_login(
    api_repo: Repository, api_keystore: KeyStore, tmp_path: Path
) -> None:
    """No ``CERTSTORE_OIDC_ISSUER``: the login page says so and starting a login answers 404."""
    app = create_app(Settings(data_dir=tmp_path, public_url=PUBLIC), repo=api_repo, keystore=api_keystore)
    with TestClient(app, base_url=PUBLIC, raise_server_exceptions=False) as client:
        assert "尚未配置统一身份认证" in client.get("/holder/login").text
        assert client.get("/holder/login/start", follow_redirects=False).status_code == 404


@SQLITE_ONLY
def test_a_raised_minimum_refuses_a_real_name_login(
    api_repo: Repository, api_keystore: KeyStore, tmp_path: Path, provider: OidcProvider
) -> None:
    """``CERTSTORE_OIDC_MIN_ACR=L3``: a real-name (L2) account is refused, a real-person (L3) one admitted."""
    settings = holder_settings(tmp_path, provider.issuer, CERTSTORE_OIDC_MIN_ACR="L3")
    app = create_app(settings, repo=api_repo, keystore=api_keystore)
    with TestClient(app, base_url=PUBLIC, raise_server_exceptions=False) as client:
        assert log_in(client, provider, "zhangsan").status_code == 403
        assert log_in(client, provider, "company").status_code == 303


@SQLITE_ONLY
def test_an_unreachable_provider_answers_503_not_a_refusal(
    api_repo: Repository, api_keystore: KeyStore, tmp_path: Path
) -> None:
    """The platform down (nothing listens at the issuer): the login page says it is unavailable, 503."""
    from devservers.ports import free_port

    settings = holder_settings(tmp_path, f"http://127.0.0.1:{free_port()}")
    app = create_app(settings, repo=api_repo, keystore=api_keystore)
    with TestClient(app, base_url=PUBLIC, raise_server_exceptions=False) as client:
        response = client.get("/holder/login/start", follow_redirects=False)
        assert response.status_code == 503 and "暂不可用" in response.text


@SQLITE_ONLY
def test_a_flood_of_login_starts_from_one_address_is_refused_before_anything_is_stored(
    api_repo: Repository, api_keystore: KeyStore, tmp_path: Path, provider: OidcProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Each start stores a pending login: the starts share the anonymous requests' per-address bucket (burst 10),
    so the 11th quick start is a 429 problem with Retry-After and no row; another address still starts."""
    monkeypatch.delenv("CERTSTORE_PUBLIC_RATE", raising=False)
    monkeypatch.delenv("CERTSTORE_PUBLIC_BURST", raising=False)
    # the buckets' clock stands still: a slow machine must not refill a token between the requests
    monkeypatch.setattr(ratelimit, "TokenBuckets", functools.partial(TokenBuckets, clock=lambda: 1000.0))
    app = create_app(holder_settings(tmp_path, provider.issuer), repo=api_repo, keystore=api_keystore)

    def pending() -> int:
        with api_repo.db.session(readonly=True) as session:
            return int(session.scalar(select(func.count()).select_from(HolderLoginAttemptRow)) or 0)

    with TestClient(app, base_url=PUBLIC, raise_server_exceptions=False, client=("203.0.113.7", 1)) as flood:
        started = [flood.get("/holder/login/start", follow_redirects=False) for _ in range(10)]
        assert [r.status_code for r in started] == [303] * 10
        assert pending() == 10
        refused = flood.get("/holder/login/start", follow_redirects=False)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["type"].endswith("/rate-limited")
        assert pending() == 10  # refused before a pending login was written
        assert flood.get("/holder/login").status_code == 200  # the login page itself is not limited
        other = TestClient(app, base_url=PUBLIC, raise_server_exceptions=False, client=("198.51.100.9", 1))
        assert other.get("/holder/login/start", follow_redirects=False).status_code == 303
