"""`certstore issue` and `certstore verify` together, as docs/cli.md specifies (exit codes included)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from certstore.access import Actor
from certstore.services import certificates
from certstore.store.repository import Repository
from tests.support import issuing

CODE = "11410100990000017F003"  # 建设工程规划许可证


@pytest.fixture
def data_json(cli, tmp_path: Path) -> Path:
    assert cli("keys", "init").code == 0
    example = cli("catalogue", "example", CODE)
    assert example.code == 0
    path = tmp_path / "data.json"
    path.write_text(example.out)
    return path


@pytest.mark.parametrize("suffix", [".ofd", ".pdf"])
def test_issue_then_verify(cli, data_json: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"cert{suffix}"
    issued = cli("issue", "--catalogue", CODE, "--data", data_json, "--out", out)
    assert issued.code == 0, issued.err
    identifier = issued.out.strip().splitlines()[-1]
    assert identifier.startswith(f"1.2.156.3005.2.{CODE}.")
    verified = cli("verify", out, "--json")
    assert verified.code == 0, verified.out
    report = verified.json()
    assert report["indication"] == "VALID" and report["format"] == suffix[1:]
    assert report["certificate"]["identifier"] == identifier and report["certificate"]["status"] == "valid"
    again = cli("issue", "--catalogue", CODE, "--data", data_json, "--out", tmp_path / f"again{suffix}")
    assert again.code == 0 and "already stored" in again.out and again.out.strip().endswith(identifier)


def test_tampered_file_exits_1(cli, data_json: Path, tmp_path: Path) -> None:
    out = tmp_path / "cert.pdf"
    assert cli("issue", "--catalogue", CODE, "--data", data_json, "--out", out).code == 0
    data = bytearray(out.read_bytes())
    position = data.index(b"/ZZBS")  # inside the signed byte range
    data[position + 2] ^= 0x01
    out.write_bytes(bytes(data))
    assert cli("verify", out).code == 1


@pytest.mark.parametrize(
    ("change", "args", "message"),
    [
        ({"face": {}}, [], "face"),
        (
            {"holder": {"name": "x", "id_type": "001", "id_number": "91410100MA44A1B2X0"}},
            [],
            "holder.id_number",
        ),
        ({}, ["--out", "{tmp}/cert.txt"], ".ofd or .pdf"),
        ({"catalogue": "11410100990000017F001"}, [], "is for catalogue"),
        ({}, ["--seal", "nosuchseal"], "nosuchseal"),
    ],
    ids=["empty-face", "bad-holder-id", "bad-suffix", "other-catalogue", "unknown-seal"],
)
def test_bad_input_exits_3(
    cli, data_json: Path, tmp_path: Path, change: dict, args: list[str], message: str
) -> None:
    document = json.loads(data_json.read_text())
    document.update(change)
    data_json.write_text(json.dumps(document, ensure_ascii=False))
    extra = [a.format(tmp=tmp_path) for a in args]
    if "--out" not in extra:
        extra += ["--out", str(tmp_path / "cert.ofd")]
    result = cli("issue", "--catalogue", CODE, "--data", data_json, *extra)
    assert result.code == 3, (result.out, result.err)
    assert message in result.err


def test_issue_leaves_one_audit_entry_of_the_operator(
    cli, data_json: Path, tmp_path: Path, data_dir: Path
) -> None:
    """The command line is an entry point like any other: its issuance is audited in its own transaction, as the
    operator (OS user@host, role operator), and the trail verifies."""
    issued = cli("issue", "--catalogue", CODE, "--data", data_json, "--out", tmp_path / "cert.ofd")
    assert issued.code == 0, issued.err
    identifier = issued.out.strip().splitlines()[-1]
    repo = Repository.open(data_dir)
    try:
        [entry] = [e for e in issuing.audit_entries(repo) if e.certificate_identifier == identifier]
        certificate = certificates.get(repo, identifier)
    finally:
        repo.db.dispose()
    operator = Actor.operator()
    assert (entry.principal, entry.role, entry.organisation_code) == (
        f"operator:{operator.name}",
        "operator",
        None,
    )
    assert (entry.action, entry.outcome, entry.holder_digest) == (
        "certificate.issue",
        "allow",
        certificate.holder_ref,
    )
    assert entry.details == {"via": "cli", "source": "data.json", "version": 1}
    assert certificate.events[0].actor == f"operator:{operator.name}"
    verified = cli("audit", "verify", "--json")
    assert verified.code == 0, verified.out
    assert verified.json()["intact"] is True
