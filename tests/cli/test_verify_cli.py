"""`certstore verify FILE` as docs/cli.md specifies: exit 0 VALID, 1 INVALID, 2 INDETERMINATE, 3 unreadable/usage."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certstore.app import Application
from certstore.cli import verify as verify_command
from certstore.cli.common import Context
from certstore.identifiers import CertificateIdentifier
from certstore.keystore import KeyStore
from certstore.lifecycle import Action
from certstore.services import certificates
from tests.seal.seal_builders import Party, make_hierarchy, ofdrw_maker
from tests.support import issuing
from tests.verify.builders import OFD_FIXTURES, ROOT_PEM, content_files, signed_ofd, zip_bytes

ALLPROTECTED = OFD_FIXTURES / "ofdrw-sign__allprotected.ofd"
EXPIRED = OFD_FIXTURES / "ofdrw-reader__SESV4SignDoc.ofd"
UNTRUSTED = OFD_FIXTURES / "ofdrw-sign__v4signed.ofd"
TWO_SEALS = OFD_FIXTURES / "ofdrw-converter__h.ofd"


@pytest.fixture
def ofdrw(tmp_path: Path) -> tuple[object, ...]:
    """The options that give the third-party fixtures their documented verdicts: the ofdrw root as a trust anchor
    and the ofdrw seal maker (clientAuth, not the seal-maker purpose) as a trusted maker."""
    maker = tmp_path / "ofdrw-maker.pem"
    maker.write_bytes(ofdrw_maker().pem)
    return ("--trust", ROOT_PEM, "--maker", maker)


@pytest.mark.parametrize(
    ("path", "code", "verdict"),
    [
        (ALLPROTECTED, 0, "VALID"),
        (EXPIRED, 1, "INVALID"),
        (TWO_SEALS, 1, "INVALID"),
        (UNTRUSTED, 2, "INDETERMINATE"),
    ],
    ids=lambda v: v.stem if isinstance(v, Path) else str(v),
)
def test_fixture_exit_codes(cli, ofdrw: tuple[object, ...], path: Path, code: int, verdict: str) -> None:
    result = cli("verify", path, *ofdrw, "--offline")
    assert result.code == code, result.out + result.err
    assert result.out.startswith(f"{verdict}  {path.name} (OFD, ")


def test_human_output_names_the_failing_reference(cli, ofdrw: tuple[object, ...]) -> None:
    result = cli("verify", TWO_SEALS, *ofdrw, "--offline")
    assert "  signature s001: INVALID (seal; seal 「OFD R&W 测试用印章」" in result.out
    assert "FAILED   references      1 of 9 reference(s) fail: /Doc_0/Signs/Signatures.xml" in result.out
    assert "  signature s007: VALID" in result.out
    assert "  problems:\n    - Doc_0/Document.xml PublicRes" in result.out


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        (ALLPROTECTED, "  reason: all "),
        (TWO_SEALS, "  reason: references: 1 of 9 reference(s) fail: /Doc_0/Signs/Signatures.xml"),
        (UNTRUSTED, "  reason: "),
    ],
    ids=lambda v: v.stem if isinstance(v, Path) else str(v),
)
def test_human_output_gives_a_one_line_reason(
    cli, ofdrw: tuple[object, ...], path: Path, reason: str
) -> None:
    """The second line of the human-readable report is the verdict's reason in one line: the first failed check
    for INVALID, the first check not established for INDETERMINATE, how many checks passed for VALID."""
    result = cli("verify", path, *ofdrw, "--offline")
    second = result.out.splitlines()[1]
    assert second.startswith(reason), second
    if path is ALLPROTECTED:
        assert second.endswith(" check(s) passed")
    if path is UNTRUSTED:
        assert "UNKNOWN" not in second and len(second) > len(reason)


def test_json_report(cli, ofdrw: tuple[object, ...]) -> None:
    result = cli("verify", ALLPROTECTED, *ofdrw, "--offline", "--json")
    assert result.code == 0
    report = result.json()
    assert isinstance(report, dict)
    assert {"indication", "format", "certificate", "signatures", "problems"} <= report.keys()
    assert (report["indication"], report["format"], report["certificate"]) == ("VALID", "ofd", None)
    (signature,) = report["signatures"]
    assert signature["kind"] == "seal" and signature["signing_time"] == "2020-10-23T11:45:37+00:00"
    assert signature["seal"]["version"] == 4 and signature["signer"]["subject"].startswith(
        "CN=Test Certificate"
    )
    assert all({"name", "result", "reason"} <= c.keys() for c in signature["checks"])
    assert report["file"]["name"] == ALLPROTECTED.name


def test_without_the_maker_configured_the_fixture_is_invalid(cli) -> None:
    result = cli("verify", ALLPROTECTED, "--trust", ROOT_PEM, "--offline")
    assert result.code == 1
    assert "FAILED   seal_maker" in result.out and "not a seal-maker certificate" in result.out


def test_without_trust_it_is_indeterminate(cli) -> None:
    result = cli("verify", ALLPROTECTED, "--offline")
    assert result.code == 2
    assert "no trust anchor" in result.out


def test_at_judges_at_another_time(cli) -> None:
    result = cli(
        "verify", ALLPROTECTED, "--trust", ROOT_PEM, "--offline", "--at", "2030-01-01T00:00:00+08:00"
    )
    assert result.code == 1
    assert "FAILED   signer_chain" in result.out


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"this is not a certificate file", "neither an OFD (ZIP) nor a PDF file"), (b"", "empty file")],
    ids=["garbage", "empty"],
)
def test_unreadable_file_exits_3(cli, tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.ofd"
    path.write_bytes(content)
    result = cli("verify", path)
    assert result.code == 3
    assert f"{path}: unreadable: {message}" in result.err


@pytest.mark.parametrize(
    "args",
    [["verify", "{tmp}/missing.ofd"], ["verify", str(ALLPROTECTED), "--at", "yesterday"], ["verify"]],
    ids=["missing", "bad-time", "no-file"],
)
def test_usage_errors_exit_3(cli, tmp_path: Path, args: list[str]) -> None:
    result = cli(*[a.format(tmp=tmp_path) for a in args])
    assert result.code == 3, result.out + result.err


def test_hostile_package_is_invalid_not_a_crash(cli, tmp_path: Path) -> None:
    path = tmp_path / "evil.ofd"
    path.write_bytes(zip_bytes([*content_files().items(), ("../../evil.sh", b"rm -rf /")]))
    result = cli("verify", path, "--json")
    assert result.code == 1
    assert result.json()["problems"] == [
        "package refused: canonical package rule 2 (names): entry name '../../evil.sh' contains '..' (path traversal)"
    ]


def test_raw_sign_signature_needs_the_signer_certificate(cli, tmp_path: Path) -> None:
    h = make_hierarchy()
    path = tmp_path / "signed.ofd"
    path.write_bytes(signed_ofd(h.signer, form="raw").package)
    root, signer = tmp_path / "root.pem", tmp_path / "signer.pem"
    root.write_bytes(h.root.certificate.pem)
    signer.write_bytes(h.signer.certificate.pem)
    assert cli("verify", path, "--trust", root, "--offline").code == 2
    result = cli("verify", path, "--trust", root, "--offline", "--signer-cert", signer)
    assert "  signature s1: VALID (sign; signer CN=签章者" in result.out
    # this file names a certificate identifier (ZZBS): offline without a status snapshot its status is unknown,
    # so the file is INDETERMINATE, never VALID
    assert result.code == 2, result.out
    assert "status unknown" in result.out
    assert "UNKNOWN  status          status unknown: offline, and no status snapshot was given" in result.out


def test_key_store_signers_are_known_signers(cli, tmp_path: Path, data_dir: Path) -> None:
    """A raw Type="Sign" signature by the key store's agency signer verifies without --signer-cert."""
    assert cli("keys", "init").code == 0
    store = KeyStore(data_dir / "keys")
    agency = Party(store.signer("11410100990000025A"), store.signer_entry("11410100990000025A").certificate)
    path = tmp_path / "agency-signed.ofd"
    signed_now = datetime.now(UTC).isoformat(timespec="seconds")  # the dev certificates start now
    # a certificate of that agency (the identifier names its credit code): seal_owner ties the signer to it
    own = CertificateIdentifier.build("11410100990000025A001", "11410100990000025A", "20230000403", 1)
    files = content_files(identifier=str(own))
    path.write_bytes(signed_ofd(agency, form="raw", date_time=signed_now, files=files).package)
    result = cli("verify", path, "--offline")
    assert "  signature s1: VALID (sign; signer " in result.out, result.out
    assert result.code == 2 and "status unknown" in result.out  # it names a certificate: offline, no status


def test_repository_hook_is_used_unless_offline(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h = make_hierarchy()
    path = tmp_path / "signed.ofd"
    path.write_bytes(signed_ofd(h.signer, form="content").package)
    root = tmp_path / "root.pem"
    root.write_bytes(h.root.certificate.pem)

    class Revoked:
        def status(self, identifier: str, at: object = None) -> tuple[str, str]:
            return "revoked", "吊销"

        def content_digest_matches(self, identifier: str, package: bytes, **_: object) -> bool:
            return True

    monkeypatch.setattr(verify_command, "repository_for", lambda ctx: Revoked())
    online = cli("verify", path, "--trust", root)
    assert online.code == 1
    assert "status revoked (吊销)" in online.out
    offline = cli("verify", path, "--trust", root, "--offline")
    assert offline.code == 2 and "status unknown" in offline.out  # not consulted: never VALID


def test_the_repository_consulted_is_the_applications(data_dir: Path) -> None:
    """Online, the command asks the repository of the data directory's application (opened once per command)."""
    context = Context(data_dir=data_dir)
    try:
        check = verify_command.repository_for(context)
        assert context.application() is context.application()
        assert context.repository() is context.application().repo
        assert check.status("1.2.156.3005.2.11410100990000025A001.11410100990000025A.00.001.M") is None
    finally:
        context.close()
    assert not context._opened


# --- status history (--at) and offline status (--status) ------------------------------------------------------

CODE = "11410100990000017F003"  # 建设工程规划许可证


def _issue(cli, tmp_path: Path) -> tuple[Path, str]:
    assert cli("keys", "init").code == 0
    example = cli("catalogue", "example", CODE)
    data = tmp_path / "data.json"
    data.write_text(example.out)
    out = tmp_path / "cert.ofd"
    issued = cli("issue", "--catalogue", CODE, "--data", data, "--out", out)
    assert issued.code == 0, issued.err
    return out, issued.out.strip().splitlines()[-1]


def _revoke(data_dir: Path, identifier: str) -> datetime:
    app = Application.open(data_dir)
    try:
        issuing.act(app, identifier, Action.REVOKE, reason="行政处罚")
        return certificates.get(app.repo, identifier).events[-1].at
    finally:
        app.close()


def test_at_answers_the_status_of_that_time(cli, tmp_path: Path, data_dir: Path) -> None:
    path, identifier = _issue(cli, tmp_path)
    time.sleep(2.1)  # the revocation comes after the issuance (the dev keys and seal start at `keys init`)
    revoked_at = _revoke(data_dir, identifier)
    before = cli("verify", path, "--at", (revoked_at - timedelta(seconds=1)).isoformat())
    assert before.code == 0, before.out
    assert f"certificate {identifier}: status valid" in before.out
    after = cli("verify", path, "--at", (revoked_at + timedelta(seconds=1)).isoformat())
    assert after.code == 1, after.out
    assert f"certificate {identifier}: status revoked (吊销)" in after.out


def test_offline_status_from_a_signed_snapshot(cli, tmp_path: Path, data_dir: Path) -> None:
    path, identifier = _issue(cli, tmp_path)
    snapshot = tmp_path / "status.cssl"
    built = cli("status", "snapshot", "--out", snapshot, "--valid-for", "1h")
    assert built.code == 0, built.err
    assert built.out.startswith("status snapshot #") and "0 of 1 version(s) not in force" in built.out
    assert cli("verify", path, "--offline").code == 2  # no snapshot: status unknown
    valid = cli("verify", path, "--offline", "--status", snapshot)
    assert valid.code == 0, valid.out
    assert "is valid (有效) now by status snapshot #" in valid.out and "thisUpdate" in valid.out
    time.sleep(1.1)  # the revocation comes a second after the issuance
    revoked_at = _revoke(data_dir, identifier)
    assert (
        cli("verify", path, "--offline", "--status", snapshot).code == 0
    )  # the old snapshot still says valid
    revoked = tmp_path / "revoked.cssl"
    assert "1 of 1 version(s) not in force" in cli("status", "snapshot", "--out", revoked).out
    result = cli("verify", path, "--offline", "--status", revoked, "--json")
    assert result.code == 1, result.out
    report = result.json()
    assert report["indication"] == "INVALID" and report["certificate"]["status"] == "revoked"
    before = revoked_at.replace(microsecond=0) - timedelta(seconds=1)  # the snapshot lists it from its second
    earlier = cli("verify", path, "--offline", "--status", revoked, "--at", before.isoformat())
    assert earlier.code == 0, earlier.out
    assert "listed as revoked (吊销) from" in earlier.out
    tampered = tmp_path / "tampered.cssl"
    body = bytearray(revoked.read_bytes())
    body[-5] ^= 0xFF  # inside the signature
    tampered.write_bytes(bytes(body))
    refused = cli("verify", path, "--offline", "--status", tampered)
    assert refused.code == 2, refused.out
    assert "status unknown: status snapshot refused:" in refused.out
    assert cli("verify", path, "--status", revoked).code == 3  # --status is for --offline
    assert cli("status", "snapshot", "--out", snapshot, "--valid-for", "soon").code == 3


def test_a_stale_snapshot_is_status_unknown(cli, tmp_path: Path) -> None:
    path, _ = _issue(cli, tmp_path)
    snapshot = tmp_path / "status.cssl"
    assert cli("status", "snapshot", "--out", snapshot, "--valid-for", "1s").code == 0
    time.sleep(2.1)
    result = cli("verify", path, "--offline", "--status", snapshot)
    assert result.code == 2, result.out
    assert "UNKNOWN  status          status unknown: snapshot expired" in result.out
