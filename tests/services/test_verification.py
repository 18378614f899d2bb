"""The verification use cases (``certstore.services.verification``), once for every entry point: a presented file
(read once for its report, its repository check and its preview), a stored file, and the public status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import certstore.verify.ofd as ofd_verifier
from certstore.app import Application
from certstore.checks import CheckResult, Indication
from certstore.keystore import KeyStore
from certstore.lifecycle import Action, Status
from certstore.packaging.ofd.reader import OfdReader
from certstore.services import verification
from certstore.services.issuance import file_maker, sealing_key
from certstore.services.keys import init_dev_keys
from certstore.store.repository import Repository
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
    result = issuing.issue(app, draft(**changes), file_maker=file_maker(sealing_key(app.keystore)))
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
    assert [c.result for c in online.certificate.checks] == [CheckResult.PASSED, CheckResult.PASSED]
    assert [c.result for c in offline.certificate.checks] == [CheckResult.SKIPPED, CheckResult.SKIPPED]


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
