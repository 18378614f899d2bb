"""``verify_file``: format detection and dispatch (OFD, PDF, unreadable), the certificate-level repository checks
(``status``, ``content_match``), CheckMethod spellings and the SM3(Z_A ‖ file) compatibility switch."""

from __future__ import annotations

import hashlib
import sys
import types
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

import certstore.verify.pipeline as pipeline
from certstore.checks import Check, CheckResult, Indication
from certstore.crypto.sm3 import sm3
from certstore.lifecycle import Status
from certstore.verify import (
    CertificateReport,
    Format,
    OfdOptions,
    RepositoryCheck,
    SignatureKind,
    SignatureReport,
    UnreadableFileError,
    VerificationReport,
    detect_format,
    verify_and_read,
    verify_file,
)
from certstore.verify.pipeline import OFFLINE_REASON, OfflineStatus
from certstore.verify.status_list import build_status_list, read_status_list
from tests.seal.seal_builders import Hierarchy, make_hierarchy
from tests.verify.builders import (
    IDENTIFIER,
    ISSUER_NAME,
    SEAL_ESL,
    content_files,
    fixture,
    make_test_seal,
    sealed_ofd,
    signed_ofd,
    with_entries,
    zip_bytes,
)

PDF_MODULE = "certstore.verify.pdf"


@pytest.fixture(scope="module")
def h() -> Hierarchy:
    return make_hierarchy()


@pytest.fixture(scope="module")
def package(h: Hierarchy) -> bytes:
    return sealed_ofd(h).package


@dataclass
class FakeRepository:
    """A repository that knows one certificate."""

    status_answer: tuple[str, str] | None = ("valid", "有效")
    content: bool | None = True
    error: Exception | None = None
    asked: list[tuple[str, datetime | None]] = field(default_factory=list)
    ofds: list[object] = field(default_factory=list)

    def status(self, identifier: str, at: datetime | None = None) -> tuple[str, str] | None:
        self.asked.append((identifier, at))
        if self.error is not None:
            raise self.error
        return self.status_answer

    def content_digest_matches(
        self, identifier: str, package: bytes, *, package_sm3: str | None = None, ofd: object = None
    ) -> bool | None:
        assert package_sm3 is None or package_sm3 == sm3(package).hex()
        self.ofds.append(ofd)
        if self.error is not None:
            raise self.error
        return self.content


def test_fake_repository_satisfies_the_protocol() -> None:
    assert isinstance(FakeRepository(), RepositoryCheck)


# --- certificate-level checks ------------------------------------------------------------------------------


def test_offline_checks_are_skipped(h: Hierarchy, package: bytes) -> None:
    report = verify_file(package, trust=h.trust)
    assert report.indication is Indication.VALID
    assert report.certificate is not None and report.certificate.identifier == IDENTIFIER
    assert report.certificate.status is None
    assert [(c.name, c.result, c.reason) for c in report.certificate.checks] == [
        ("status", CheckResult.SKIPPED, OFFLINE_REASON),
        ("content_match", CheckResult.SKIPPED, OFFLINE_REASON),
        (
            "seal_owner",
            CheckResult.PASSED,
            f"s1: signer of the issuer {ISSUER_NAME} (11430000006122244L) by its "
            f"organisation name {ISSUER_NAME!r} (no credit code to compare)",
        ),
    ]  # seal_owner needs only the file: its signer belongs to the issuer it names


def test_valid_and_matching(h: Hierarchy, package: bytes) -> None:
    repository = FakeRepository()
    report = verify_file(package, trust=h.trust, repository=repository)
    assert report.indication is Indication.VALID
    assert report.certificate is not None
    assert (report.certificate.status, report.certificate.label) == ("valid", "有效")
    assert [c.result for c in report.certificate.checks] == [CheckResult.PASSED] * 3
    assert repository.asked == [(IDENTIFIER, None)]
    assert report.to_dict()["certificate"]["status"] == "valid"


@pytest.mark.parametrize(
    ("status", "label"),
    [
        ("revoked", "吊销"),
        ("cancelled", "注销"),
        ("annulled", "废止"),
        ("expired", "过期"),
        ("suspended", "挂起"),
        ("superseded", "已变更"),
    ],
)
def test_status_out_of_force_is_invalid(h: Hierarchy, package: bytes, status: str, label: str) -> None:
    report = verify_file(package, trust=h.trust, repository=FakeRepository((status, label)))
    assert report.indication is Indication.INVALID
    assert report.signatures[0].indication is Indication.VALID  # the file itself is intact
    check = report.certificate.checks[0]  # type: ignore[union-attr]
    assert check.result is CheckResult.FAILED
    assert check.reason == f"certificate {IDENTIFIER} is {status} ({label}) in the repository now"


def test_status_at_a_given_time(h: Hierarchy, package: bytes) -> None:
    repository = FakeRepository()
    at = datetime(2025, 5, 31, 12, tzinfo=UTC)
    report = verify_file(package, trust=h.trust, repository=repository, at=at)
    assert repository.asked == [(IDENTIFIER, at)]
    assert "at 2025-05-31T12:00:00+00:00" in report.certificate.checks[0].reason  # type: ignore[union-attr]


def test_unknown_identifier_is_indeterminate(h: Hierarchy, package: bytes) -> None:
    report = verify_file(package, trust=h.trust, repository=FakeRepository(None, None))
    assert report.indication is Indication.INDETERMINATE
    assert report.certificate.checks[0].reason == f"certificate {IDENTIFIER} is not in the repository"  # type: ignore[union-attr]


def test_unreachable_repository_is_indeterminate(h: Hierarchy, package: bytes) -> None:
    report = verify_file(package, trust=h.trust, repository=FakeRepository(error=ConnectionError("db down")))
    assert report.indication is Indication.INDETERMINATE
    assert [c.reason for c in report.certificate.checks][:2] == [  # type: ignore[union-attr]
        "repository unreachable: ConnectionError: db down",
        "repository unreachable: ConnectionError: db down",
    ]


def test_content_mismatch_is_invalid(h: Hierarchy, package: bytes) -> None:
    report = verify_file(package, trust=h.trust, repository=FakeRepository(content=False))
    assert report.indication is Indication.INVALID
    assert report.certificate.checks[1].reason == (  # type: ignore[union-attr]
        f"the file differs from the content the repository recorded for {IDENTIFIER}"
    )


def test_files_without_identifier_ask_nothing(h: Hierarchy) -> None:
    repository = FakeRepository()
    report = verify_file(
        sealed_ofd(h, files=content_files(identifier=None)).package, trust=h.trust, repository=repository
    )
    assert report.certificate is None and repository.asked == []


def test_file_info(h: Hierarchy, package: bytes) -> None:
    report = verify_file(package, trust=h.trust, file_name="cert.ofd")
    assert report.file is not None
    assert (report.file.size, report.file.name) == (len(package), "cert.ofd")
    assert report.file.sha256 == hashlib.sha256(package).hexdigest()
    assert report.verified_at is not None


# --- CheckMethod ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "digest"),
    [
        ("SM3", None),
        ("sm3", None),
        ("1.2.156.10197.1.401", None),
        ("MD5", lambda d: hashlib.md5(d).digest()),
        ("SHA1", lambda d: hashlib.sha1(d).digest()),
        (None, lambda d: hashlib.md5(d).digest()),  # attribute omitted: the schema default MD5
    ],
    ids=["SM3", "sm3", "oid", "MD5", "SHA1", "omitted"],
)
def test_check_method_spellings(h: Hierarchy, method: str | None, digest) -> None:
    built = sealed_ofd(h, check_method=method, digest=digest or sm3)
    report = verify_file(built.package, trust=h.trust)
    assert report.indication is Indication.VALID, report.signatures[0].check("references")
    if method is None:
        assert report.signatures[0].check("references").warnings == (
            "CheckMethod omitted: MD5, the schema default",
        )


def test_sm3_with_z_needs_the_compatibility_switch(h: Hierarchy) -> None:
    built = sealed_ofd(h, check_method="1.2.156.10197.1.401.2", digest=h.signer.certificate.public_key.digest)
    strict = verify_file(built.package, trust=h.trust)
    assert strict.indication is Indication.INDETERMINATE
    references = strict.signatures[0].check("references")
    assert references.result is CheckResult.UNKNOWN
    assert "dms360 compatibility mode" in references.reason
    compatible = verify_file(
        built.package, trust=h.trust, ofd_options=OfdOptions(sm3_with_z_check_values=True)
    )
    assert compatible.indication is Indication.VALID
    assert (
        compatible.signatures[0]
        .check("references")
        .reason.startswith("all 7 reference(s) match (SM3(Z_A ‖ file))")
    )


def test_unknown_check_method_is_unknown(h: Hierarchy) -> None:
    built = sealed_ofd(h, check_method="GOST")
    references = verify_file(built.package, trust=h.trust).signatures[0].check("references")
    assert references.result is CheckResult.UNKNOWN
    assert (
        references.reason
        == "7 reference(s) not checked: CheckMethod 'GOST' is not supported (SM3, MD5, SHA1)"
    )


# --- Seal-level extras: propertyInfo and the Seal.esl copy ------------------------------------------------


def test_seal_copy_must_match_the_embedded_seal(h: Hierarchy) -> None:
    built = sealed_ofd(h, protect=[n for n in content_files()])  # Seal.esl present but not protected
    other = make_test_seal(h, h.other_signer)
    report = verify_file(with_entries(built.package, {SEAL_ESL: other}), trust=h.trust)
    assert report.indication is Indication.INVALID
    seal_copy = report.signatures[0].check("seal_copy")
    assert seal_copy.result is CheckResult.FAILED
    assert seal_copy.reason.startswith(f"{SEAL_ESL} (")


def test_no_seal_element_skips_the_copy_check(h: Hierarchy) -> None:
    report = verify_file(sealed_ofd(h, seal_copy=False).package, trust=h.trust)
    assert report.indication is Indication.VALID
    assert report.signatures[0].check("seal_copy").result is CheckResult.SKIPPED


# --- Formats -------------------------------------------------------------------------------------------------


def test_detect_format() -> None:
    assert detect_format(fixture("ofdrw-sign__allprotected.ofd")) is Format.OFD
    assert detect_format(b"junk" + fixture("ofdrw-sign__allprotected.ofd")) is Format.OFD
    assert detect_format(b"%PDF-1.7\n...") is Format.PDF
    assert detect_format(b"\xef\xbb\xbf%PDF-1.4\n") is Format.PDF
    with pytest.raises(UnreadableFileError, match="neither an OFD"):
        detect_format(b"GIF89a")


def test_pdf_without_the_pdf_verifier(monkeypatch: pytest.MonkeyPatch, h: Hierarchy) -> None:
    monkeypatch.setitem(sys.modules, PDF_MODULE, None)  # import fails as if the module were not installed
    report = verify_file(b"%PDF-1.7\n%%EOF\n", trust=h.trust)
    assert report.format is Format.PDF
    assert report.indication is Indication.INDETERMINATE
    assert report.problems == (
        "PDF verification is not available in this installation (certstore.verify.pdf is missing)",
    )


def _fake_pdf_module(monkeypatch: pytest.MonkeyPatch, report: VerificationReport) -> list[dict]:
    calls: list[dict] = []

    def verify_pdf(data: bytes, **kwargs: object) -> VerificationReport:
        calls.append({"data": data, **kwargs})
        return report

    module = types.ModuleType(PDF_MODULE)
    module.verify_pdf = verify_pdf  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, PDF_MODULE, module)
    return calls


def test_pdf_is_dispatched_and_gets_repository_checks(monkeypatch: pytest.MonkeyPatch, h: Hierarchy) -> None:
    signature = SignatureReport("Sig1", SignatureKind.SEAL, (Check("signature", CheckResult.PASSED, "ok"),))
    pdf_report = VerificationReport(
        Indication.VALID, Format.PDF, (signature,), certificate=CertificateReport(IDENTIFIER)
    )
    calls = _fake_pdf_module(monkeypatch, pdf_report)
    data = b"%PDF-1.7\n%%EOF\n"
    report = verify_file(data, trust=h.trust, repository=FakeRepository(("revoked", "吊销")))
    assert calls == [{"data": data, "trust": h.trust, "at": None}]
    assert report.indication is Indication.INVALID
    assert report.certificate is not None and report.certificate.status == "revoked"


def test_pdf_zip_polyglot_is_not_valid(monkeypatch: pytest.MonkeyPatch, h: Hierarchy) -> None:
    signature = SignatureReport("Sig1", SignatureKind.SEAL, (Check("signature", CheckResult.PASSED, "ok"),))
    _fake_pdf_module(monkeypatch, VerificationReport(Indication.VALID, Format.PDF, (signature,)))
    polyglot = b"%PDF-1.7\n" + zip_bytes([("OFD.xml", b"<OFD/>")])
    report = verify_file(polyglot, trust=h.trust)
    assert report.indication is Indication.INDETERMINATE
    assert "PDF/ZIP polyglot" in report.problems[-1]


def test_internal_errors_become_indeterminate(
    monkeypatch: pytest.MonkeyPatch, h: Hierarchy, package: bytes
) -> None:
    def broken(*_args: object, **_kwargs: object) -> VerificationReport:
        raise RuntimeError("bug")

    monkeypatch.setattr(pipeline, "read_and_verify_ofd", broken)
    report = verify_file(package, trust=h.trust)
    assert report.indication is Indication.INDETERMINATE
    assert report.problems == ("internal error while verifying: RuntimeError: bug",)


def test_naive_time_is_refused(h: Hierarchy, package: bytes) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_file(package, trust=h.trust, at=datetime(2025, 1, 1))


def test_a_file_is_read_once_for_its_report_and_its_repository_check(
    monkeypatch: pytest.MonkeyPatch, h: Hierarchy, package: bytes
) -> None:
    """``verify_and_read`` hands back the package it read; the repository's content check gets the same one."""
    import certstore.verify.ofd as ofd_module

    opened: list[object] = []
    real_open = ofd_module.OfdReader.open

    def counting_open(data: bytes, **kwargs: object) -> object:
        opened.append(data)
        return real_open(data, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ofd_module.OfdReader, "open", counting_open)
    repository = FakeRepository()
    verified = verify_and_read(package, trust=h.trust, repository=repository)
    assert verified.report.indication is Indication.VALID
    assert verified.package is not None and verified.package.doc_info.custom_datas["ZZBS"] == IDENTIFIER
    assert len(opened) == 1
    assert repository.ofds == [verified.package]
    offline = verify_file(package, trust=h.trust)
    assert [sig.to_dict() for sig in offline.signatures] == [
        sig.to_dict() for sig in verified.report.signatures
    ]


def test_a_pdf_or_a_refused_package_has_no_package(h: Hierarchy) -> None:
    refused = zip_bytes([("OFD.xml", b"<not-xml")])
    verified = verify_and_read(refused, trust=h.trust)
    assert verified.report.indication is Indication.INVALID and verified.package is None


# --- offline status: a signed status snapshot, or status unknown -------------------------------------------


def _offline_snapshot(
    h: Hierarchy,
    status: Status,
    *,
    identifier: str = IDENTIFIER,
    since: datetime | None = None,
    this_update: datetime | None = None,
) -> OfflineStatus:
    """A snapshot listing ``identifier`` as ``status`` since ``since`` (valid: not listed)."""
    this_update = this_update or SNAPSHOT_AT
    listed = (
        [] if status is Status.VALID else [(identifier, status, since or this_update - timedelta(hours=1))]
    )
    data = build_status_list(
        [*listed, ("1.2.156.3005.2.OTHER.001.X", Status.REVOKED, this_update - timedelta(days=3))],
        issuer="测试电子证照库",
        sequence=7,
        this_update=this_update,
        next_update=this_update + timedelta(hours=24),
        signer=h.signer.signer,
        certificate=h.signer.certificate,
    )
    return OfflineStatus(read_status_list(data, trust=h.trust))


SNAPSHOT_AT = datetime(2025, 6, 1, 8, 0, 0, tzinfo=UTC)


def _status(report: VerificationReport) -> Check:
    assert report.certificate is not None
    return report.certificate.checks[0]


def test_offline_without_a_snapshot_is_status_unknown(h: Hierarchy) -> None:
    data = signed_ofd(h.signer, form="content").package
    report = verify_file(data, trust=h.trust, offline=OfflineStatus(problem="offline, and no snapshot"))
    assert report.indication is Indication.INDETERMINATE
    assert (_status(report).result, _status(report).reason) == (
        CheckResult.UNKNOWN,
        "status unknown: offline, and no snapshot",
    )
    # integrity only (the repository's own use): both SKIPPED, the file's own verdict
    assert verify_file(data, trust=h.trust).indication is Indication.VALID
    # a file that names no certificate has no status to know: its verdict is its signatures'
    foreign = signed_ofd(h.signer, form="content", files=content_files(identifier=None)).package
    report = verify_file(foreign, trust=h.trust, offline=OfflineStatus(problem="offline"))
    assert report.certificate is None and report.indication is Indication.VALID


@pytest.mark.parametrize(
    ("status", "indication"),
    [
        (Status.VALID, Indication.VALID),
        (Status.REVOKED, Indication.INVALID),
        (Status.SUPERSEDED, Indication.INVALID),
    ],
)
def test_offline_status_from_a_snapshot(h: Hierarchy, status: Status, indication: Indication) -> None:
    data = signed_ofd(h.signer, form="content").package
    now = SNAPSHOT_AT + timedelta(hours=3, minutes=5)
    report = verify_file(data, trust=h.trust, offline=_offline_snapshot(h, status), now=now)
    assert report.indication is indication, report.to_dict()
    check = _status(report)
    assert check.reason.startswith(
        f"certificate {IDENTIFIER} is {status.value} ({status.label}) now by status "
    )
    assert (
        "snapshot #7 of 测试电子证照库 (thisUpdate 2025-06-01T08:00:00+00:00, 3h05m old; nextUpdate"
        in check.reason
    )
    assert report.certificate is not None and report.certificate.status == status.value
    assert report.certificate.checks[1].result is CheckResult.SKIPPED  # content_match: not offline


SIGNED_AT = datetime(2025, 5, 31, 8, 0, 0, tzinfo=UTC)  # signed_ofd's signing time (16:00 China time)


def test_a_stale_or_predating_snapshot_is_status_unknown(h: Hierarchy) -> None:
    data = signed_ofd(h.signer, form="content").package
    offline = _offline_snapshot(h, Status.VALID)
    stale = verify_file(data, trust=h.trust, offline=offline, now=SNAPSHOT_AT + timedelta(hours=25))
    assert stale.indication is Indication.INDETERMINATE
    assert _status(stale).reason.startswith("status unknown: snapshot expired — status snapshot #7")
    beyond = verify_file(
        data, trust=h.trust, offline=offline, at=SNAPSHOT_AT + timedelta(hours=25), now=SNAPSHOT_AT
    )
    assert _status(beyond).reason.startswith(
        "status unknown: a snapshot states the status up to its nextUpdate"
    )
    # not listed, but the file was signed after the snapshot's thisUpdate: the snapshot cannot vouch for it
    predating = _offline_snapshot(h, Status.VALID, this_update=SIGNED_AT - timedelta(hours=1))
    report = verify_file(data, trust=h.trust, offline=predating, now=SIGNED_AT + timedelta(hours=1))
    assert report.indication is Indication.INDETERMINATE
    assert _status(report).reason.startswith(
        f"status unknown: certificate {IDENTIFIER}: the file was signed at 2025-05-31T08:00:00Z, after the "
        "snapshot's thisUpdate 2025-05-31T07:00:00Z: the snapshot predates it — status snapshot #7"
    )
    earlier = verify_file(
        data, trust=h.trust, offline=offline, at=SIGNED_AT - timedelta(hours=1), now=SNAPSHOT_AT
    )
    assert earlier.indication is Indication.INDETERMINATE
    assert "before the file was signed (2025-05-31T08:00:00Z)" in _status(earlier).reason


def test_a_version_not_listed_and_signed_before_this_update_is_valid_offline(h: Hierarchy) -> None:
    data = signed_ofd(h.signer, form="content").package
    unlisted = _offline_snapshot(h, Status.REVOKED, identifier="1.2.156.3005.2.SOMETHING.ELSE.001.X")
    report = verify_file(data, trust=h.trust, offline=unlisted, now=SNAPSHOT_AT)
    assert _status(report).result is CheckResult.PASSED, report.to_dict()
    assert _status(report).reason.startswith(
        f"certificate {IDENTIFIER} is valid (有效) now by status snapshot #7"
    )
    assert "; not listed: in force as of its thisUpdate" in _status(report).reason


def test_offline_at_answers_the_status_as_the_snapshot_lists_it(h: Hierarchy) -> None:
    data = signed_ofd(h.signer, form="content").package
    revoked_at = SNAPSHOT_AT - timedelta(hours=6)
    offline = _offline_snapshot(h, Status.REVOKED, since=revoked_at)
    now = SNAPSHOT_AT + timedelta(hours=1)
    before = verify_file(data, trust=h.trust, offline=offline, at=revoked_at - timedelta(seconds=27), now=now)
    assert _status(before).result is CheckResult.PASSED, before.to_dict()
    assert "is valid (有效) at 2025-06-01T01:59:33+00:00 by status snapshot #7" in _status(before).reason
    assert "listed as revoked (吊销) from 2025-06-01T02:00:00+00:00" in _status(before).reason
    for at in (revoked_at, None):
        after = verify_file(data, trust=h.trust, offline=offline, at=at, now=now)
        assert after.indication is Indication.INVALID and _status(after).result is CheckResult.FAILED
        assert "revoked since 2025-06-01T02:00:00+00:00" in _status(after).reason
        assert after.certificate is not None and after.certificate.status == "revoked"
