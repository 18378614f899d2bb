"""``certstore user set-password``: the password comes from a variable or a prompt, never an argument."""

from __future__ import annotations

from pathlib import Path

import pytest

from certstore.access import AuthenticationError, Role
from certstore.services import logins
from certstore.store.repository import Repository
from tests.cli.conftest import Cli


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
