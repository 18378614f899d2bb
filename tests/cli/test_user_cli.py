"""``certstore user set-password``: the password comes from a variable or a prompt, never an argument;
``certstore user disable|enable``: offboarding."""

from __future__ import annotations

from pathlib import Path

import pytest

from certstore.access import AuthenticationError, Role
from certstore.services import access, logins
from certstore.store.repository import Repository
from tests.cli.conftest import Cli
from tests.support import issuing


def test_set_password_from_a_variable_creates_the_principal_and_it_logs_in(
    cli: Cli, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEB_PASSWORD", "s3cret-passphrase")
    result = cli(
        "user", "set-password", "--org", "12410100MB0000001X", "--name", "张三", "--role", "window",
        "--password-env", "WEB_PASSWORD",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "12410100MB0000001X/张三 (window)" in result.out and "s3cret" not in result.out + result.err
    principal = logins.authenticate_password(
        Repository.open(data_dir), "12410100MB0000001X", "张三", "s3cret-passphrase"
    )
    assert principal.role is Role.WINDOW


def test_unknown_principal_without_role_missing_variable_and_short_password_are_refused(
    cli: Cli, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHORT", "short")
    monkeypatch.setenv("GOOD", "long-enough-1")
    base = ("user", "set-password", "--org", "12410100MB0000001X", "--name", "李四")
    assert cli(*base, "--password-env", "GOOD").code == 3  # no such principal and no --role
    assert "--role" in cli(*base, "--password-env", "GOOD").err
    assert cli(*base, "--role", "window", "--password-env", "NOT_SET").code == 3
    assert cli(*base, "--role", "window", "--password-env", "SHORT").code == 3
    with pytest.raises(AuthenticationError):
        logins.authenticate_password(Repository.open(data_dir), "12410100MB0000001X", "李四", "short")


@pytest.mark.filterwarnings("ignore::getpass.GetPassWarning")
def test_set_password_prompts_twice(cli: Cli, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.StringIO("prompted-pass-1\nprompted-pass-1\n"))
    result = cli("user", "set-password", "--org", "11410100MB1700001X", "--name", "审计", "--role", "auditor")
    assert result.code == 0, result.err
    logins.authenticate_password(Repository.open(data_dir), "11410100MB1700001X", "审计", "prompted-pass-1")


def test_disable_and_enable_a_principal(cli: Cli, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``user disable ORG/NAME`` refuses the principal's token and password from the next call on and says how
    many page sessions it ended; ``user enable`` restores both; both are audited as the operator's calls; a
    malformed or unknown principal is an error (exit 3)."""
    monkeypatch.setenv("WEB_PASSWORD", "s3cret-passphrase")
    org, ref = "12410100MB0000001X", "12410100MB0000001X/张三"
    base = ("user", "set-password", "--org", org, "--name", "张三", "--role", "window")
    assert cli(*base, "--password-env", "WEB_PASSWORD").code == 0
    repo = Repository.open(data_dir)
    token = access.create_token(repo, role=Role.WINDOW, organisation_code=org, name="张三").token
    logins.create_session(repo, access.authenticate(repo, token))

    disabled = cli("user", "disable", ref, "--reason", "离职")
    assert disabled.code == 0, disabled.err
    assert f"{ref} (window): disabled" in disabled.out and "1 page session(s) ended" in disabled.out
    with pytest.raises(AuthenticationError):
        access.authenticate(repo, token)
    with pytest.raises(AuthenticationError):
        logins.authenticate_password(repo, org, "张三", "s3cret-passphrase")
    assert "already disabled" in cli("user", "disable", ref).out
    assert cli("user", "disable", "张三").code == 3  # no organisation
    unknown = cli("user", "disable", f"{org}/nobody")
    assert unknown.code == 3 and "no principal" in unknown.err

    enabled = cli("user", "enable", ref)
    assert enabled.code == 0 and "enabled" in enabled.out
    assert access.authenticate(repo, token).name == "张三"
    assert logins.authenticate_password(repo, org, "张三", "s3cret-passphrase").name == "张三"
    events = [e for e in issuing.audit_entries(repo) if e.action.startswith("principal.")]
    assert [(e.action, e.role, e.details["target"]) for e in events] == [
        ("principal.disable", "operator", ref),
        ("principal.disable", "operator", ref),
        ("principal.enable", "operator", ref),
    ]
    assert events[0].reason == "离职" and events[0].details["sessions_ended"] == 1
