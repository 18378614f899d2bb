"""A real OpenID provider for the holder-login tests and the demo: ``oidc-provider-mock`` (PyPI, a Flask app on
uvicorn built with authlib) started as its own process on a free loopback port — never an in-process fake.

The provider issues RS256 ID tokens with whatever claims the test gives a user (``PUT /users/<sub>``, or
``--user-claims`` at start), publishes its key at ``/jwks``, and offers discovery, the authorization form (a
``sub`` field: who logs in), the token endpoint and RP-initiated logout (``/oauth2/end_session``). Any client id
and secret are accepted (no registration); ``--require-nonce`` makes it refuse authorization requests without a
nonce. :meth:`OidcProvider.authorize` drives the authorization form over HTTP (no browser) and returns where the
provider sends the browser back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from devservers.ports import free_port
from devservers.processes import stop_process

__all__ = ["OidcProvider", "oidc_provider", "provider_command"]


def provider_command() -> list[str]:
    """The ``oidc-provider-mock`` command of this interpreter's environment."""
    script = Path(sys.executable).with_name("oidc-provider-mock")
    if script.exists():
        return [str(script)]
    found = shutil.which("oidc-provider-mock")
    if found:
        return [found]
    return [sys.executable, "-m", "oidc_provider_mock"]


@dataclass
class OidcProvider:
    """The running provider: its issuer URL and the users it knows."""

    issuer: str
    process: subprocess.Popen[bytes]

    def set_user(self, sub: str, claims: Mapping[str, Any]) -> None:
        """Give the user ``sub`` these claims (what the next ID token for ``sub`` carries)."""
        response = httpx.put(f"{self.issuer}/users/{sub}", json=dict(claims), timeout=10)
        response.raise_for_status()

    def authorize(self, authorization_url: str, sub: str) -> str:
        """Log ``sub`` in at the provider's authorization form for ``authorization_url`` (our request) and return
        the URL the provider redirects the browser to (our callback, with ``code`` and ``state``)."""
        response = httpx.post(authorization_url, data={"sub": sub}, timeout=10, follow_redirects=False)
        if response.status_code not in (302, 303):
            raise AssertionError(f"provider did not redirect: {response.status_code} {response.text[:500]}")
        return response.headers["location"]

    def token(
        self, *, client_id: str, sub: str, redirect_uri: str, nonce: str, scope: str = "openid profile email"
    ) -> dict[str, Any]:
        """A whole code flow for another client (``client_id``) done directly: the token endpoint's answer
        (the ID token is issued to ``client_id``)."""
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": "s",
            "nonce": nonce,
        }
        url = str(httpx.URL(f"{self.issuer}/oauth2/authorize", params=params))
        location = httpx.URL(self.authorize(url, sub))
        code = location.params["code"]
        response = httpx.post(
            f"{self.issuer}/oauth2/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
            auth=(client_id, "any-secret"),
            timeout=10,
        )
        response.raise_for_status()
        return dict(response.json())


@contextmanager
def oidc_provider(
    *, users: Mapping[str, Mapping[str, Any]] | None = None, token_max_age: int = 600
) -> Iterator[OidcProvider]:
    """Start ``oidc-provider-mock`` on a free loopback port (nonce required), wait for its discovery document,
    yield it, stop it."""
    port = free_port()
    command = [
        *provider_command(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--require-nonce",
        "true",
        "--token-max-age",
        str(token_max_age),
    ]
    for sub, claims in (users or {}).items():
        command += ["--user-claims", json.dumps({"sub": sub, **claims}, ensure_ascii=False)]
    env = {**os.environ, "NO_COLOR": "1"}
    log = tempfile.TemporaryFile()  # noqa: SIM115 — closed in finally; its request log: a pipe nobody reads would fill and stall it
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
    issuer = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                log.seek(0)
                output = log.read().decode(errors="replace")
                raise AssertionError(f"oidc-provider-mock did not start:\n{output[-2000:]}")
            time.sleep(0.1)
        yield OidcProvider(issuer, process)
    finally:
        stop_process(process)
        log.close()
