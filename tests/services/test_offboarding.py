"""Offboarding (issue 17, item 3): :func:`certstore.services.access.set_disabled` — the one use case behind
``certstore user disable|enable`` and the bureau's ``POST /api/v1/principals/disable|enable`` — on both database
backends: a disabled principal's tokens, client certificates, page sessions and password stop working with the
next call; enabling restores tokens and password; every call is audited by the use case itself.

The same through a real ``certstore serve`` (two workers): tests/api/test_admin_offboarding.py."""

from __future__ import annotations

import os

import pytest

from certstore.access import AccessDeniedError, Actor, AuthenticationError, Role
from certstore.app import Application
from certstore.audit import Outcome
from certstore.services import access, logins
from certstore.store.repository import Repository
from tests.support import issuing

CLERK_ORG = "12410100MB0000001X"
BUREAU_ORG = "11410100MB1700000X"
PASSWORD = "pass-word-1"
FINGERPRINT = "ab" * 32


@pytest.fixture
def app(repo: Repository) -> Application:
    return issuing.application(repo)


def test_disable_stops_tokens_sessions_and_password_at_once_and_enable_restores(
    app: Application, repo: Repository
) -> None:
    """Disabled by the operator: the clerk's bearer token and client certificate are refused, both live page
    sessions are ended (their window cases erased) and the right password is refused like a wrong one — on the
    very next call. Enabled again: token, certificate and password work; the ended sessions stay ended. Each call
    leaves its own audit entry naming the operator, the target and what it did."""
    clerk = logins.set_password(
        repo, organisation_code=CLERK_ORG, name="张三", password=PASSWORD, role=Role.WINDOW
    )
    token = access.create_token(repo, role=Role.WINDOW, organisation_code=CLERK_ORG, name="张三").token
    access.bind_client_certificate(
        repo, FINGERPRINT, role=Role.WINDOW, organisation_code=CLERK_ORG, name="张三"
    )
    key = os.urandom(32)
    sessions = [logins.create_session(repo, clerk), logins.create_session(repo, clerk)]
    logins.set_serving(repo, sessions[0], key, {"matter": "ZZ1", "holder_id": "11010519491231002X"})
    assert access.authenticate(repo, token).id == clerk.id

    state = access.set_disabled(
        app, issuing.call(), organisation_code=CLERK_ORG.lower(), name=" 张三 ", disabled=True, reason="离职"
    )
    assert (state.changed, state.sessions_ended, state.principal.ref) == (True, 2, f"{CLERK_ORG}/张三")
    assert state.disabled_at is not None
    with pytest.raises(AuthenticationError, match="disabled"):
        access.authenticate(repo, token)
    with pytest.raises(AuthenticationError, match="disabled"):
        access.authenticate_client_certificate(repo, FINGERPRINT)
    for session in sessions:
        with pytest.raises(AuthenticationError):
            logins.open_session(repo, session, key)
    with pytest.raises(logins.LoginFailedError) as refused:
        logins.authenticate_password(repo, CLERK_ORG, "张三", PASSWORD)
    assert refused.value.reason == "disabled"
    with pytest.raises(logins.LoginFailedError) as unknown:
        logins.authenticate_password(repo, CLERK_ORG, "nobody", PASSWORD)
    assert str(refused.value) == str(unknown.value)

    again = access.set_disabled(app, issuing.call(), organisation_code=CLERK_ORG, name="张三", disabled=True)
    assert (again.changed, again.sessions_ended, again.disabled_at) == (False, 0, state.disabled_at)

    enabled = access.set_disabled(
        app, issuing.call(), organisation_code=CLERK_ORG, name="张三", disabled=False
    )
    assert (enabled.changed, enabled.disabled_at) == (True, None)
    assert access.authenticate(repo, token).id == clerk.id
    assert access.authenticate_client_certificate(repo, FINGERPRINT).id == clerk.id
    assert logins.authenticate_password(repo, CLERK_ORG, "张三", PASSWORD).id == clerk.id
    with pytest.raises(AuthenticationError):
        logins.open_session(repo, sessions[0], key)  # a session ended by the disable stays ended

    events = [e for e in issuing.audit_entries(repo) if e.action.startswith("principal.")]
    assert [(e.action, e.outcome, e.details["changed"]) for e in events] == [
        ("principal.disable", Outcome.ALLOW, True),
        ("principal.disable", Outcome.ALLOW, False),
        ("principal.enable", Outcome.ALLOW, True),
    ]
    first = events[0]
    assert first.principal == "operator:test@localhost" and first.role == "operator"
    assert first.details["target"] == f"{CLERK_ORG}/张三" and first.details["sessions_ended"] == 2
    assert first.reason == "离职" and first.details["via"] == "cli"


def test_only_the_bureau_and_the_operator_offboard_and_nobody_disables_themselves(
    app: Application, repo: Repository
) -> None:
    """A window clerk may not disable anyone (403, audited as a denial, nothing changed); the bureau may disable
    another principal but not itself; an unknown principal is a PrincipalNotFoundError."""
    clerk = logins.set_password(
        repo, organisation_code=CLERK_ORG, name="张三", password=PASSWORD, role=Role.WINDOW
    )
    issued = access.create_token(repo, role=Role.BUREAU, organisation_code=BUREAU_ORG, name="钱七")
    bureau = issued.principal
    with pytest.raises(AccessDeniedError):
        access.set_disabled(
            app, issuing.call(Actor.of(clerk)), organisation_code=BUREAU_ORG, name="钱七", disabled=True
        )
    with pytest.raises(ValueError, match="itself"):
        access.set_disabled(
            app, issuing.call(Actor.of(bureau)), organisation_code=BUREAU_ORG, name="钱七", disabled=True
        )
    assert access.authenticate(repo, issued.token).id == bureau.id  # neither attempt changed anything
    with pytest.raises(access.PrincipalNotFoundError):
        access.set_disabled(app, issuing.call(), organisation_code=CLERK_ORG, name="nobody", disabled=True)
    done = access.set_disabled(
        app, issuing.call(Actor.of(bureau)), organisation_code=CLERK_ORG, name="张三", disabled=True
    )
    assert done.changed
    with pytest.raises(logins.LoginFailedError):
        logins.authenticate_password(repo, CLERK_ORG, "张三", PASSWORD)
    events = [e for e in issuing.audit_entries(repo) if e.action == "principal.disable"]
    assert [(e.principal, e.outcome, e.status_code) for e in events] == [
        (f"{CLERK_ORG}/张三", Outcome.DENY, 403),
        (f"{BUREAU_ORG}/钱七", Outcome.ALLOW, 200),
    ]
