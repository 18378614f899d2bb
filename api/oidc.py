"""The OpenID Connect relying party (依赖方) of the holder login (一号登录): the repository logs holders in at the
provincial unified identity platform (统一身份认证) — or any OpenID provider — with the authorization code flow.

Built from authlib's parts (:mod:`authlib.oauth2.rfc6749.parameters` for the authorization request and the
callback, :mod:`authlib.oauth2.rfc7636` for PKCE, :class:`authlib.oidc.core.CodeIDToken` for the ID token's
claims) with httpx as the transport and joserfc (authlib's JOSE) for the signature:

1. **Discovery**: ``<issuer>/.well-known/openid-configuration``, whose ``issuer`` must be the configured one;
   kept for :data:`METADATA_TTL`; the JWKS likewise, fetched again once when a token names an unknown key.
2. **Authorization request**: ``response_type=code``, ``scope=openid profile email``, a ``state``, a ``nonce`` and
   a PKCE S256 challenge (:mod:`certstore.services.holders` keeps the pending login server-side).
3. **Callback**: the ``state`` must come back unchanged (authlib's ``parse_authorization_code_response``); the
   code is exchanged at the token endpoint with the client secret (HTTP Basic) and the PKCE verifier.
4. **ID token**: signature by a key of the provider's JWKS, with an algorithm the provider announces (never
   ``none`` or an HMAC keyed with a public key); ``iss`` the configured issuer, ``aud`` containing our client id
   (``azp`` when several), ``exp`` not passed and ``iat`` not in the future nor older than :data:`MAX_TOKEN_AGE`
   (repository clock, :data:`LEEWAY` seconds leeway), ``nonce`` the one of this login, ``at_hash`` when present.
5. **Logout** (RP-initiated): the session ends here, then the browser goes to the provider's
   ``end_session_endpoint`` (when it announces one) with ``id_token_hint``, ``client_id`` and
   ``post_logout_redirect_uri``.

Configuration (:class:`OidcSettings`): ``CERTSTORE_OIDC_ISSUER``, ``CERTSTORE_OIDC_CLIENT_ID``,
``CERTSTORE_OIDC_CLIENT_SECRET``; the redirect URI is ``<public URL>/holder/login/callback``. Unset issuer: no
holder login (the pages say so).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc6749.parameters import parse_authorization_code_response, prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from certstore.access import AuthenticationError

__all__ = [
    "CALLBACK_PATH",
    "LEEWAY",
    "MAX_TOKEN_AGE",
    "IdTokenError",
    "OidcError",
    "OidcSettings",
    "ProviderError",
    "RelyingParty",
]

CALLBACK_PATH = "/holder/login/callback"
METADATA_TTL = 3600.0
LEEWAY = 60
MAX_TOKEN_AGE = 600
_ASYMMETRIC = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
_TIMEOUT = httpx.Timeout(10.0)


class OidcError(AuthenticationError):
    """The login at the identity provider did not succeed (the message says why; the holder is not logged in)."""


class ProviderError(OidcError):
    """The provider could not be reached or answered something unusable (discovery, JWKS, token endpoint)."""


class IdTokenError(OidcError):
    """The ID token was refused: bad signature, wrong issuer or audience, expired, wrong nonce …"""


@dataclass(frozen=True)
class OidcSettings:
    """The relying party's configuration (``CERTSTORE_OIDC_*``)."""

    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    scope: str = "openid profile email"
    post_logout_redirect_uri: str | None = None

    @classmethod
    def from_env(cls, public_url: str | None, env: Mapping[str, str] = os.environ) -> OidcSettings | None:
        """The settings from the environment, or None when ``CERTSTORE_OIDC_ISSUER`` is unset. The redirect URI
        is ``<public URL>/holder/login/callback`` (``CERTSTORE_OIDC_REDIRECT_URI`` overrides)."""
        issuer = env.get("CERTSTORE_OIDC_ISSUER", "").strip().rstrip("/")
        if not issuer:
            return None
        client_id = env.get("CERTSTORE_OIDC_CLIENT_ID", "").strip()
        if not client_id:
            raise ValueError("CERTSTORE_OIDC_ISSUER is set: CERTSTORE_OIDC_CLIENT_ID is needed too")
        redirect = env.get("CERTSTORE_OIDC_REDIRECT_URI", "").strip()
        if not redirect:
            if not public_url:
                raise ValueError(
                    "holder login needs the public URL (CERTSTORE_PUBLIC_URL) for its redirect URI"
                )
            redirect = public_url.rstrip("/") + CALLBACK_PATH
        base = redirect[: -len(CALLBACK_PATH)] if redirect.endswith(CALLBACK_PATH) else public_url
        return cls(
            issuer=issuer,
            client_id=client_id,
            client_secret=env.get("CERTSTORE_OIDC_CLIENT_SECRET", ""),
            redirect_uri=redirect,
            scope=env.get("CERTSTORE_OIDC_SCOPE", "").strip() or cls.scope,
            post_logout_redirect_uri=(base.rstrip("/") + "/holder/login") if base else None,
        )


@dataclass
class _Cached:
    value: dict[str, Any]
    fetched: float


@dataclass
class RelyingParty:
    """One OpenID provider as seen by this repository (thread-safe; one per application)."""

    settings: OidcSettings
    _metadata: _Cached | None = field(default=None, repr=False)
    _jwks: _Cached | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- discovery -----------------------------------------------------------------------------------

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = httpx.get(url, timeout=_TIMEOUT, follow_redirects=False)
            response.raise_for_status()
            value = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderError(f"统一身份认证平台暂不可用 (identity provider: {url}: {exc})") from None
        if not isinstance(value, dict):
            raise ProviderError(f"identity provider: {url} did not answer a JSON object")
        return value

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (cached), checked to name the configured issuer."""
        with self._lock:
            cached = self._metadata
        if cached is not None and time.monotonic() - cached.fetched < METADATA_TTL:
            return cached.value
        value = self._get_json(self.settings.issuer + "/.well-known/openid-configuration")
        if str(value.get("issuer", "")).rstrip("/") != self.settings.issuer:
            raise ProviderError(
                f"identity provider: discovery names issuer {value.get('issuer')!r}, not {self.settings.issuer!r}"
            )
        for needed in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(value.get(needed), str):
                raise ProviderError(f"identity provider: discovery lacks {needed}")
        with self._lock:
            self._metadata = _Cached(value, time.monotonic())
        return value

    def _key_set(self, *, force: bool = False) -> KeySet:
        with self._lock:
            cached = self._jwks
        if force or cached is None or time.monotonic() - cached.fetched >= METADATA_TTL:
            value = self._get_json(self.metadata()["jwks_uri"])
            cached = _Cached(value, time.monotonic())
            with self._lock:
                self._jwks = cached
        try:
            return KeySet.import_key_set(cached.value)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise ProviderError(f"identity provider: unusable JWKS ({exc})") from None

    # --- the flow ----------------------------------------------------------------------------------------

    def authorization_url(self, *, state: str, nonce: str, code_verifier: str) -> str:
        """Where to send the browser: the provider's authorization endpoint with our request."""
        return str(
            prepare_grant_uri(
                self.metadata()["authorization_endpoint"],
                self.settings.client_id,
                "code",
                redirect_uri=self.settings.redirect_uri,
                scope=self.settings.scope,
                state=state,
                nonce=nonce,
                code_challenge=create_s256_code_challenge(code_verifier),
                code_challenge_method="S256",
            )
        )

    def callback_code(self, callback_url: str, state: str | None) -> str:
        """The authorization code of the provider's redirect back to us (``callback_url``, the full URL), with the
        ``state`` checked; :class:`OidcError` for an error answer (e.g. the holder declined) or a wrong state."""
        try:
            params = parse_authorization_code_response(callback_url, state=state)
        except (OAuth2Error, AuthlibBaseError) as exc:
            error = getattr(exc, "error", None) or type(exc).__name__
            description = getattr(exc, "description", None) or ""
            raise OidcError(
                f"统一身份认证未完成登录 (identity provider: {error} {description})".strip()
            ) from None
        code = params.get("code")
        if not isinstance(code, str) or not code:
            raise OidcError("identity provider: no authorization code in the callback")
        return code

    def exchange(self, code: str, code_verifier: str) -> dict[str, Any]:
        """The token endpoint's answer for ``code`` (client secret by HTTP Basic, PKCE verifier)."""
        body = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.settings.redirect_uri,
            "code_verifier": code_verifier,
        }
        auth = (self.settings.client_id, self.settings.client_secret)
        try:
            response = httpx.post(
                self.metadata()["token_endpoint"],
                data=body,
                auth=auth,
                headers={"Accept": "application/json"},
                timeout=_TIMEOUT,
            )
            value = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderError(f"identity provider: token endpoint failed ({exc})") from None
        if response.status_code != 200 or not isinstance(value, dict) or "error" in value:
            error = value.get("error") if isinstance(value, dict) else None
            raise OidcError(f"identity provider refused the code ({error or response.status_code})")
        if not isinstance(value.get("id_token"), str):
            raise OidcError("identity provider: no ID token in the token response")
        return value

    def validate_id_token(
        self, id_token: str, *, nonce: str, now: datetime, access_token: str | None = None
    ) -> dict[str, Any]:
        """The claims of ``id_token`` once every check of the module docstring passed (:class:`IdTokenError`)."""
        metadata = self.metadata()
        announced = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [alg for alg in announced if alg in _ASYMMETRIC]
        if not algorithms:
            raise ProviderError(f"identity provider announces no usable signing algorithm ({announced})")
        registry = JWSRegistry(algorithms=algorithms, strict_check_header=False)
        try:
            try:
                token = jwt.decode(id_token, key=self._key_set(), algorithms=algorithms, registry=registry)
            except InvalidKeyIdError:
                token = jwt.decode(
                    id_token, key=self._key_set(force=True), algorithms=algorithms, registry=registry
                )
        except (JoseError, ValueError, TypeError) as exc:
            raise IdTokenError(f"ID token refused: signature ({type(exc).__name__}: {exc})") from None
        options = {
            "iss": {"essential": True, "value": self.settings.issuer},
            "aud": {"essential": True, "value": self.settings.client_id},
            "exp": {"essential": True},
            "iat": {"essential": True},
            "nonce": {"essential": True, "value": nonce},
        }
        params = {"nonce": nonce, "client_id": self.settings.client_id}
        if access_token:
            params["access_token"] = access_token
        claims = CodeIDToken(token.claims, token.header, options, params)  # type: ignore[arg-type]
        at = int(now.timestamp())
        try:
            claims.validate(now=at, leeway=LEEWAY)
        except (JoseError, AuthlibBaseError, ValueError) as exc:
            raise IdTokenError(f"ID token refused: {type(exc).__name__}: {exc}") from None
        issued = claims.get("iat")
        if (
            not isinstance(issued, int | float)
            or issued > at + LEEWAY
            or issued < at - MAX_TOKEN_AGE - LEEWAY
        ):
            raise IdTokenError("ID token refused: issued at an unacceptable time (iat)")
        return dict(claims)

    def logout_url(self, *, id_token_hint: str | None, state: str | None = None) -> str | None:
        """The provider's end-session URL for RP-initiated logout, or None when it announces none."""
        try:
            endpoint = self.metadata().get("end_session_endpoint")
        except ProviderError:
            return None
        if not isinstance(endpoint, str) or not endpoint:
            return None
        params = {"client_id": self.settings.client_id}
        if id_token_hint:
            params["id_token_hint"] = id_token_hint
        if self.settings.post_logout_redirect_uri:
            params["post_logout_redirect_uri"] = self.settings.post_logout_redirect_uri
        if state:
            params["state"] = state
        return str(httpx.URL(endpoint, params=params))
