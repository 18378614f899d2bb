"""``certstore token create|list|revoke`` (docs/cli.md): the token is printed once, last line; it authenticates."""

from __future__ import annotations

from pathlib import Path

from certstore.access import AuthenticationError, Role
from certstore.services import access
from certstore.store.repository import Repository
from tests.cli.conftest import Cli


def test_create_prints_the_token_alone_on_the_last_line_and_it_authenticates(
    cli: Cli, data_dir: Path
) -> None:
    result = cli("token", "create", "--role", "window", "--org", "12410100MB0000001X", "--name", "张三")
    assert result.code == 0, result.err
    token = result.out.strip().splitlines()[-1]
    assert token.startswith("cst_") and " " not in token
    assert "12410100MB0000001X/张三" in result.err
    principal = access.authenticate(Repository.open(data_dir), token)
    assert (principal.role, principal.organisation_code, principal.name) == (
        Role.WINDOW,
        "12410100MB0000001X",
        "张三",
    )


def test_list_never_shows_secrets_and_revoke_takes_effect(cli: Cli, data_dir: Path) -> None:
    token = (
        cli("token", "create", "--role", "auditor", "--org", "11410100MB1700001X")
        .out.strip()
        .splitlines()[-1]
    )
    listing = cli("token", "list", "--json")
    assert listing.code == 0
    rows = listing.json()
    assert isinstance(rows, list) and len(rows) == 1
    assert token.split("_", 2)[2] not in listing.out
    token_id = rows[0]["id"]
    assert cli("token", "revoke", token_id).code == 0
    repo = Repository.open(data_dir)
    try:
        access.authenticate(repo, token)
    except AuthenticationError as exc:
        assert "revoked" in str(exc)
    else:
        raise AssertionError("a revoked token still authenticates")


def test_bad_input_exits_3_with_a_message(cli: Cli) -> None:
    assert cli("token", "create", "--role", "king", "--org", "12410100MB0000001X").code == 3
    bad_org = cli("token", "create", "--role", "agency", "--org", "lower-case")
    assert bad_org.code == 3 and "organisation code" in bad_org.err
    assert cli("token", "create", "--role", "agency", "--org", "12410100MB0000001X", "--days", "0").code == 3
    assert cli("token", "revoke", "0000000000000000").code == 3
