"""The verification use cases (``certstore.services.verification``), once for every entry point: a presented file
(read once for its report, its repository check and its preview), a stored file, and the public status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import certstore.verify.ofd as ofd_verifier
from certstore.app import Application
from certstore.checks import Check, CheckResult, Indication
from certstore.keystore import KeyStore
from certstore.lifecycle import Action, Status
from certstore.packaging.ofd.reader import OfdReader
from certstore.services import status_snapshot, verification
from certstore.services.issuance import catalogue_file_maker
from certstore.services.keys import init_dev_keys
from certstore.store.repository import Repository
from certstore.verify import VerificationReport
from tests.services.conftest import Clock, DraftMaker
from tests.support import issuing
from tests.verify.builders import entries_of, with_entries

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    store = KeyStore(tmp_path_factory.mktemp("keys") / "keys")
    init_dev_keys(store)
    return store


@pytest.fixture
def app(repo: Repository, keystore: KeyStore) -> Application:
    return issuing.application(repo, keystore)


def _issued(app: Application, draft: DraftMaker, **changes: object) -> str:
    result = issuing.issue(app, draft(**changes), file_maker=catalogue_file_maker(app.keystore))
    return result.certificate.identifier


def _stored(app: Application, identifier: str) -> bytes:
    certificate = verification.certificates.get(app.repo, identifier)
    assert certificate.file_key is not None
    return app.repo.blobs.get(certificate.file_key)


def test_a_presented_file_is_read_once(
    app: Application, draft: DraftMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    identifier = _issued(app, draft)
    data = _stored(app, identifier)
    opened: list[int] = []
    real_open = OfdReader.open

    def counting_open(presented: bytes, **kwargs: object) -> object:
        opened.append(len(presented))
        return real_open(presented, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ofd_verifier.OfdReader, "open", counting_open)
    presented = verification.verify_presented(app, data, file_name="presented.ofd")
    png = verification.presented_preview(presented)
    assert presented.report.indication is Indication.VALID, presented.report.to_dict()
    assert presented.report.file is not None and presented.report.file.name == "presented.ofd"
    assert presented.package is not None
    assert png is not None and png.startswith(PNG)
    assert opened == [len(data)]  # the report, the repository check and the preview: one read


def test_online_and_offline(app: Application, draft: DraftMaker) -> None:
    data = _stored(app, _issued(app, draft))
    online = verification.verify_presented(app, data).report
    offline = verification.verify_presented(app, data, offline=True).report
    assert online.certificate is not None and offline.certificate is not None
    assert [c.result for c in online.certificate.checks] == [CheckResult.PASSED] * 3  # status, content, owner
    assert online.indication is Indication.VALID
    # offline, without a status snapshot, the status of our certificate cannot be known: never VALID
    assert [c.result for c in offline.certificate.checks] == [
        CheckResult.UNKNOWN, CheckResult.SKIPPED, CheckResult.PASSED,
    ]  # fmt: skip
    assert offline.certificate.checks[0].reason.startswith("status unknown: offline")
    assert offline.indication is Indication.INDETERMINATE


def _check(report: VerificationReport, name: str) -> Check:
    assert report.certificate is not None
    return next(c for c in report.certificate.checks if c.name == name)


def test_status_at_a_past_time_follows_the_events(app: Application, draft: DraftMaker, clock: Clock) -> None:
    identifier = _issued(app, draft)
    data = _stored(app, identifier)
    clock.advance(minutes=2)
    issuing.act(app, identifier, Action.REVOKE, reason="行政处罚")
    revoked_at = verification.certificates.get(app.repo, identifier).events[-1].at
    before = verification.verify_presented(app, data, at=revoked_at - timedelta(seconds=27)).report
    assert before.indication is Indication.VALID, before.to_dict()
    assert before.certificate is not None and before.certificate.status == "valid"
    after = verification.verify_presented(app, data, at=revoked_at + timedelta(seconds=1)).report
    assert after.indication is Indication.INVALID
    assert after.certificate is not None and after.certificate.status == "revoked"
    assert "revoked (吊销) in the repository at" in _check(after, "status").reason
    now = verification.verify_presented(app, data).report
    assert now.indication is Indication.INVALID


def test_status_as_of(app: Application, draft: DraftMaker, clock: Clock) -> None:
    identifier = _issued(app, draft)
    clock.advance(minutes=1)
    issuing.act(app, identifier, Action.SUSPEND, reason="核查")
    clock.advance(minutes=1)
    issuing.act(app, identifier, Action.RESUME, reason="核查完毕")
    certificate = verification.certificates.get(app.repo, identifier)
    issued, suspended, resumed = (e.at for e in certificate.events)
    assert verification.status_as_of(certificate, issued) is Status.VALID
    assert verification.status_as_of(certificate, suspended + timedelta(seconds=30)) is Status.SUSPENDED
    assert verification.status_as_of(certificate, resumed) is Status.VALID
    assert verification.status_as_of(certificate, issued - timedelta(days=400)) is None  # not yet issued
    if certificate.valid_until is not None:
        later = datetime.combine(certificate.valid_until, datetime.min.time(), UTC) + timedelta(days=2)
        assert verification.status_as_of(certificate, later) is Status.EXPIRED
    stale = verification.verify_presented(
        app, _stored(app, identifier), at=issued - timedelta(days=400)
    ).report
    assert "was not yet issued" in _check(stale, "status").reason


def test_superseded_only_from_the_successor(app: Application, draft: DraftMaker, clock: Clock) -> None:
    identifier = _issued(app, draft)
    clock.advance(minutes=1)
    successor = issuing.renew(app, identifier, valid_until=None).identifier
    old = verification.certificates.get(app.repo, identifier)
    created = verification.certificates.get(app.repo, successor).created_at
    assert verification.status_as_of(old, created - timedelta(seconds=1)) is Status.VALID
    assert verification.status_as_of(old, created) is Status.SUPERSEDED


def test_content_match_compares_the_stored_file_digest(app: Application, draft: DraftMaker) -> None:
    identifier = _issued(app, draft)
    data = _stored(app, identifier)
    same = _check(verification.verify_presented(app, data).report, "content_match")
    assert (
        same.result is CheckResult.PASSED
        and "SM3 of the presented file" in same.reason
        and same.reason.startswith("the file is the content")
    )
    page, content = next((name, body) for name, body in entries_of(data) if name.endswith("Content.xml"))
    # page content changed; metadata (CustomDatas) and the seal signatures are kept as they were
    changed = with_entries(data, {page: content.replace(b"</ofd:Page>", b"<!-- changed --></ofd:Page>")})
    report = verification.verify_presented(app, changed).report
    differs = _check(report, "content_match")
    assert differs.result is CheckResult.FAILED, differs
    assert "differs from the SM3 of the OFD file stored for" in differs.reason
    assert report.indication is Indication.INVALID


# --- signed status snapshot (offline) ---------------------------------------------------------------------


def _snapshot(app: Application, **kwargs: object) -> bytes:
    return status_snapshot.build_snapshot(app, issuing.call(), **kwargs).data  # type: ignore[arg-type]


def test_offline_with_a_status_snapshot(app: Application, draft: DraftMaker, clock: Clock) -> None:
    identifier = _issued(app, draft)
    data = _stored(app, identifier)
    # The seal is signed (and time-stamped) by the real clock; a snapshot is as of the repository's (test) clock:
    # move it past the signing time, or the file would be newer than the snapshot (status unknown).
    clock.advance(minutes=1)
    valid = _snapshot(app)
    report = verification.verify_presented(app, data, offline=True, status_snapshot=valid).report
    assert report.indication is Indication.VALID, report.to_dict()
    reason = _check(report, "status").reason
    assert f"certificate {identifier} is valid (有效) now by status snapshot #" in reason
    assert "thisUpdate" in reason and "old; nextUpdate" in reason
    assert _check(report, "content_match").result is CheckResult.SKIPPED
    issuing.act(app, identifier, Action.REVOKE, reason="行政处罚")
    revoked = _snapshot(app)
    report = verification.verify_presented(app, data, offline=True, status_snapshot=revoked).report
    assert report.indication is Indication.INVALID
    assert report.certificate is not None and report.certificate.status == "revoked"
    [entry, *_] = [e for e in reversed(issuing.audit_entries(app.repo)) if e.action == "status.snapshot"]
    assert entry.details["count"] == 1 and entry.details["sequence"] >= 2


def test_a_stale_snapshot_says_status_unknown(app: Application, draft: DraftMaker, clock: Clock) -> None:
    data = _stored(app, _issued(app, draft))
    clock.advance(minutes=1)  # past the real-clock signing time (see above)
    stale = _snapshot(app, valid_for=timedelta(hours=24))
    fresh = verification.verify_presented(app, data, offline=True, status_snapshot=stale).report
    assert fresh.indication is Indication.VALID
    clock.advance(hours=24, seconds=1)
    report = verification.verify_presented(app, data, offline=True, status_snapshot=stale).report
    assert report.indication is Indication.INDETERMINATE
    assert _check(report, "status").reason.startswith("status unknown: snapshot expired")


def test_a_tampered_or_forged_snapshot_is_refused(
    app: Application, draft: DraftMaker, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data = _stored(app, _issued(app, draft))
    genuine = _snapshot(app)
    tampered = bytearray(genuine)
    tampered[40] ^= 0x01  # inside the header or body: the signed part
    report = verification.verify_presented(app, data, offline=True, status_snapshot=bytes(tampered)).report
    assert report.indication is Indication.INDETERMINATE
    assert "status snapshot refused: its signature does not verify" in _check(report, "status").reason
    other = KeyStore(tmp_path_factory.mktemp("other") / "keys")
    init_dev_keys(other)
    forged = _snapshot(Application(app.repo, other))  # the same list, signed by another repository's key
    report = verification.verify_presented(app, data, offline=True, status_snapshot=forged).report
    assert report.indication is Indication.INDETERMINATE
    assert "status snapshot refused: signed by" in _check(report, "status").reason


def test_a_time_without_offset_is_utc(app: Application, draft: DraftMaker, clock: Clock) -> None:
    data = _stored(app, _issued(app, draft))
    when = (clock.now + timedelta(minutes=1)).replace(microsecond=0)
    naive = verification.verify_presented(app, data, at=when.replace(tzinfo=None)).report
    aware = verification.verify_presented(app, data, at=when.astimezone(UTC)).report
    assert naive.indication is aware.indication is Indication.VALID
    assert [s.to_dict() for s in naive.signatures] == [s.to_dict() for s in aware.signatures]


def test_no_preview_of_an_invalid_file(app: Application, draft: DraftMaker) -> None:
    data = _stored(app, _issued(app, draft))
    page, content = next((name, body) for name, body in entries_of(data) if name.endswith("Content.xml"))
    tampered = with_entries(data, {page: content.replace(b"</ofd:Page>", b"<!-- forged --></ofd:Page>")})
    presented = verification.verify_presented(app, tampered, offline=True)
    assert presented.report.indication is Indication.INVALID
    assert presented.package is not None  # read, and drawable …
    assert verification.presented_preview(presented) is None  # … but a forged face is not shown
    pdf = verification.Presented(presented.report, None)
    assert verification.presented_preview(pdf) is None


def test_verify_stored(app: Application, draft: DraftMaker) -> None:
    identifier = _issued(app, draft)
    certificate = verification.certificates.get(app.repo, identifier)
    report = verification.verify_stored(app, certificate)
    assert report.indication is Indication.VALID
    assert report.file is not None and report.file.name == f"{certificate.certificate_number}.ofd"
    assert report.certificate is not None and report.certificate.status == "valid"
    bare = issuing.issue(app, draft(number="选字第410100202400099号")).certificate
    with pytest.raises(ValueError, match="without a file"):
        verification.verify_stored(app, bare)


def test_public_status_shows_no_personal_data(app: Application, draft: DraftMaker, clock: Clock) -> None:
    identifier = _issued(app, draft)
    status = verification.public_status(app, identifier)
    assert (status.identifier, status.status, status.status_label) == (identifier, Status.VALID, "有效")
    assert status.is_current_version and status.checked_at == clock.now.replace(microsecond=0)
    certificate = verification.certificates.get(app.repo, identifier)
    assert certificate.holder.id_number not in repr(status) and certificate.holder.name not in repr(status)
    issuing.act(app, identifier, Action.REVOKE, reason="行政处罚")
    assert verification.public_status(app, identifier).status is Status.REVOKED
    assert isinstance(status.checked_at, datetime)
