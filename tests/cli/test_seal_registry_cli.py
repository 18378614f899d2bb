"""`certstore seal list|suspend|resume|revoke`: the seal registry at the command line (exit codes: 0 done,
3 unknown seal or bad input, 4 a change the rules refuse), each change audited."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from certstore.app import Application
from certstore.services.keys import DEV_REPOSITORY
from tests.support.issuing import audit_entries

ISSUER_CODE = "11410100990000025A"


def _seals(cli) -> dict[str, dict]:
    listed = cli("seal", "list", "--json")
    assert listed.code == 0, listed.err
    return {seal["keystore_name"]: seal for seal in listed.json()}


def test_list_and_change_round_trip(cli, data_dir: Path) -> None:
    assert cli("keys", "init").code == 0
    seals = _seals(cli)
    assert seals["repository"]["owner"]["credit_code"] == DEV_REPOSITORY["credit_code"]
    own = seals[ISSUER_CODE]
    assert own["owner"]["credit_code"] == ISSUER_CODE and own["status"] == "valid"
    es_id = own["es_id"]

    text = cli("seal", "list")
    assert text.code == 0 and f"{es_id}  valid (有效)" in text.out and f"({ISSUER_CODE})" in text.out

    suspended = cli("seal", "suspend", es_id, "--reason", "送修")
    assert suspended.code == 0, suspended.err
    assert "now suspended (挂起)" in suspended.out
    assert cli("seal", "resume", es_id, "--reason", "修复").code == 0

    leaked = datetime.now(UTC).replace(microsecond=0)  # (the seal's validStart: when keys init ran)
    revoked = cli("seal", "revoke", es_id, "--reason", "私钥泄露", "--effective", leaked.isoformat())
    assert revoked.code == 0, revoked.err
    assert f"now revoked (吊销) since {leaked.isoformat()}" in revoked.out
    assert _seals(cli)[ISSUER_CODE]["status"] == "revoked"

    again = cli("seal", "revoke", es_id, "--reason", "再次")
    assert again.code == 4
    assert "revocation is final" in again.err and again.err.count("\n") == 1  # one line
    unknown = cli("seal", "suspend", "41019999999999", "--reason", "x")
    assert unknown.code == 3 and "no seal '41019999999999'" in unknown.err
    bad_time = cli("seal", "revoke", es_id, "--reason", "x", "--effective", "yesterday")
    assert bad_time.code == 3 and "--effective" in bad_time.err
    too_early = cli(
        "seal", "suspend", seals["repository"]["es_id"], "--reason", "x", "--effective", "2020-01-01"
    )
    assert too_early.code == 4 and "before the seal's validStart" in too_early.err

    app = Application.open(data_dir)
    try:
        changes = [(e.action, e.outcome.value, e.details.get("es_id"), e.details.get("via"))
                   for e in audit_entries(app.repo) if e.action.startswith("seal.") and e.action != "seal.list"]  # fmt: skip
    finally:
        app.close()
    assert changes == [
        ("seal.suspend", "allow", es_id, "cli"),
        ("seal.resume", "allow", es_id, "cli"),
        ("seal.revoke", "allow", es_id, "cli"),
    ]
