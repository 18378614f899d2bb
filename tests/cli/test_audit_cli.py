"""``certstore audit export`` / ``verify-export`` / ``checkpoint`` on the application of the data directory: the
export is the auditing use case the API and the auditor page use, signed with the repository's key."""

from __future__ import annotations

import json
from pathlib import Path

from certstore.audit.query import holder_reference
from certstore.cli.common import Context
from certstore.services.calls import Call, audit_in

HOLDER = ("001", "91410100MA44A1B2XW")


def _record(data_dir: Path, *certificates: str) -> None:
    context = Context(data_dir=data_dir)
    try:
        app = context.application()
        call = Call.operator(source="test")
        holder = holder_reference(app.repo.holder_key, *HOLDER)
        for certificate in certificates:
            with app.repo.db.session() as session:
                event = call.event("certificate.issue", certificate=certificate, holder_digest=holder)
                audit_in(session, call, event)
    finally:
        context.close()


def test_export_by_holder_verifies_offline(cli, data_dir: Path, tmp_path: Path) -> None:
    assert cli("keys", "init").code == 0
    _record(data_dir, "ZZ-1", "ZZ-2")
    out = tmp_path / "export.jsonl"
    exported = cli(
        "audit", "export", "--from", "2000-01-01", "--to", "2100-01-01", "--out", out,
        "--holder-id-type", HOLDER[0], "--holder-id", HOLDER[1],
    )  # fmt: skip
    assert exported.code == 0, exported.err
    assert "entries)" in exported.out
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["certificate_identifier"] for line in lines if line["type"] == "entry"] == ["ZZ-1", "ZZ-2"]
    checked = cli("audit", "verify-export", out, "--json")
    assert checked.code == 0 and checked.json()["intact"] is True  # type: ignore[index]
    assert cli("audit", "verify").code == 0


def test_holder_options_go_together(cli, data_dir: Path, tmp_path: Path) -> None:
    result = cli("audit", "export", "--from", "2000-01-01", "--to", "2100-01-01", "--out", tmp_path / "x",
                 "--holder-id", HOLDER[1])  # fmt: skip
    assert result.code == 3 and "go together" in result.err


def test_without_keys_nothing_covers_an_export(cli, tmp_path: Path) -> None:
    result = cli("audit", "export", "--from", "2000-01-01", "--to", "2100-01-01", "--out", tmp_path / "x")
    assert result.code == 3 and "no checkpoint" in result.err


def test_checkpoint_is_signed_with_the_repository_key(cli, data_dir: Path) -> None:
    assert cli("keys", "init").code == 0
    _record(data_dir, "ZZ-1")
    signed = cli("audit", "checkpoint", "--json")
    assert signed.code == 0, signed.err
    assert signed.json()["tree_size"] == 1  # type: ignore[index]
