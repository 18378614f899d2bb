"""Copies (副本): issue an original → copy for a using unit (a new document sealed by the repository, embedding the
original) → verify, on each database backend, with the development key store's repository signer and seal."""

from __future__ import annotations

import hashlib
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from certstore.catalogue.definitions import shipped_entries
from certstore.checks import CheckResult, Indication
from certstore.crypto.trust import TrustStore
from certstore.keystore import KeyStore, KeyStoreError
from certstore.lifecycle import Action
from certstore.packaging.layout import Box
from certstore.packaging.ofd.writer import write_package
from certstore.records import PreparedVersion
from certstore.seal import parse_seal
from certstore.services import certificates
from certstore.services.certificates import CertificateNotFoundError
from certstore.services.copies import (
    COPY_FIELDS,
    CopyRequest,
    CopyUnavailableError,
    make_copy,
    repository_sealing_key,
)
from certstore.services.issuance import OFD_MEDIA_TYPE, SealingKey, file_maker, sealing_key
from certstore.services.keys import DEV_REPOSITORY, init_dev_keys
from certstore.services.verification import RepositoryStatusCheck, repository_check
from certstore.store.repository import Repository
from certstore.verify import VerificationReport, verify_file
from tests.packaging.ofd.structure import OFD_NS, Package, check_package
from tests.services.conftest import Clock, DraftMaker
from tests.support import issuing
from tests.support.ofd import assert_openssl_verifies_seal, easyofd_render

NS = {"ofd": OFD_NS}
PAGE_ANNOT = "Doc_0/Annots/Page_0/Annotation.xml"
ORIGINAL = "Doc_0/Attachs/original.ofd"
CONTENT = "Doc_0/Pages/Page_0/Content.xml"
SIGNATURE = "Doc_0/Signs/Sign_0/Signature.xml"
#: The issuer of the drafts' default type, and the name of its seal in the development key store.
ISSUER = shipped_entries()[0].issuer
ISSUER_SEAL_NAME = f"{ISSUER.name}电子证照专用章"
REQUEST = CopyRequest(
    using_unit="郑州市不动产登记中心",
    matter="410100-2026-000123",
    purpose="办理不动产登记",
    requested_by="窗口 王五",
)


@pytest.fixture(scope="module")
def dev_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[KeyStore, SealingKey, SealingKey]:
    """The development key store: (store, the agency's sealing key, the repository's)."""
    store = KeyStore(tmp_path_factory.mktemp("keys") / "keys")
    init_dev_keys(store)
    return store, sealing_key(store, issuer=ISSUER.credit_code), repository_sealing_key(store)


def _at(clock: Clock) -> datetime:
    """A copy time after the keys were made, to the minute — and not in the future of the verifier's clock (at most
    a minute ahead, within :data:`certstore.crypto.signer.CLOCK_SKEW`): a signing time in the future is INVALID."""
    return (clock.now + timedelta(minutes=1)).replace(second=0, microsecond=0)


def _issue(repo: Repository, draft: DraftMaker, key: SealingKey, **changes: object) -> str:
    """Issue with the production file maker (issuance.make_ofd: face → OFD → the issuer's seal)."""
    result = issuing.issue(repo, draft(**changes), file_maker=file_maker(key))
    return result.certificate.identifier


def _copy(repo: Repository, identifier: str, dev_keys, clock: Clock, **kwargs: object) -> bytes:
    store, _, repository = dev_keys
    return make_copy(
        repo, identifier, REQUEST, key=repository, trust=store.trust_store(), at=_at(clock), **kwargs
    )


def _issue_and_copy(repo: Repository, draft: DraftMaker, dev_keys, clock: Clock) -> tuple[str, bytes]:
    """An original sealed by the agency and its copy sealed by the repository: (identifier, copy)."""
    identifier = _issue(repo, draft, dev_keys[1])
    return identifier, _copy(repo, identifier, dev_keys, clock)


def _stored(repo: Repository, identifier: str) -> bytes:
    return repo.blobs.get(certificates.get(repo, identifier).file_key or "")


def _annot(copy: bytes) -> etree._Element:
    (annot,) = Package.load(copy).xml(PAGE_ANNOT).findall("ofd:Annot", NS)
    return annot


def _box(text: str) -> Box:
    return Box(*(float(v) for v in text.split()))


def _checks(report: VerificationReport) -> dict[str, tuple[CheckResult, str]]:
    assert report.certificate is not None
    return {c.name: (c.result, c.reason) for c in report.certificate.checks}


# --- originals ------------------------------------------------------------------------------------------------------


def test_originals_verify_valid_without_warnings(repo: Repository, draft: DraftMaker, dev_keys) -> None:
    """Originals are exactly what issuance.make_ofd makes: no reserved slot, nothing missing, no copy check."""
    store, agency, _ = dev_keys
    identifier = _issue(repo, draft, agency)
    original = _stored(repo, identifier)
    report = verify_file(original, trust=store.trust_store(), repository=repository_check(lambda: repo))
    assert report.indication is Indication.VALID, report.to_dict()
    assert report.problems == ()
    assert [w for s in report.signatures for c in s.checks for w in c.warnings] == []
    assert list(_checks(report)) == ["status", "content_match", "seal_owner"]
    assert _checks(report)["seal_owner"][0] is CheckResult.PASSED
    assert check_package(original) == []
    assert not any(name.startswith("Doc_0/Annots/") for name in Package.load(original).files)


# --- the copy -------------------------------------------------------------------------------------------------------


def test_copy_verifies_offline_and_online(
    repo: Repository, draft: DraftMaker, dev_keys, clock: Clock
) -> None:
    store, _, repository = dev_keys
    identifier, copy = _issue_and_copy(repo, draft, dev_keys, clock)
    assert check_package(copy) == []

    offline = verify_file(copy, trust=store.trust_store())
    assert offline.indication is Indication.VALID, offline.to_dict()
    assert offline.problems == ()  # every file of the copy is covered by the repository's seal
    checks = _checks(offline)
    assert [name for name in checks] == ["status", "content_match", "seal_owner", "embedded_original"]
    assert checks["status"][0] is checks["content_match"][0] is CheckResult.SKIPPED
    # integrity-only: the repository's credit code is unknown, so only the original's seals are tied (to the issuer)
    assert checks["seal_owner"][0] is CheckResult.PASSED and "original s001" in checks["seal_owner"][1]
    assert checks["embedded_original"][0] is CheckResult.PASSED
    assert f"/{ORIGINAL}: VALID" in checks["embedded_original"][1]
    assert ISSUER_SEAL_NAME in checks["embedded_original"][1]

    online = verify_file(
        copy,
        trust=store.trust_store(),
        repository=repository_check(lambda: repo, lambda: DEV_REPOSITORY["credit_code"]),
    )
    assert online.indication is Indication.VALID, online.to_dict()
    checks = _checks(online)
    assert {name: result for name, (result, _) in checks.items()} == {
        "status": CheckResult.PASSED,
        "content_match": CheckResult.PASSED,
        "seal_owner": CheckResult.PASSED,
        "embedded_original": CheckResult.PASSED,
    }
    # the one named exception: the copy's own seal is the repository's, the original's the issuer's
    assert f"signer of the repository ({DEV_REPOSITORY['credit_code']})" in checks["seal_owner"][1]
    assert f"original s001: signer of the issuer {ISSUER.name}" in checks["seal_owner"][1]
    assert checks["content_match"][1].startswith("copy (副本) of the stored original: the embedded original")
    assert online.certificate is not None and online.certificate.identifier == identifier
    assert online.to_dict()["certificate"]["status"] == "valid"

    # exactly one signature: the repository's, closing the document
    (signature,) = online.signatures
    assert signature.indication is Indication.VALID
    assert signature.seal is not None and signature.seal.name == DEV_REPOSITORY["seal_name"]
    assert signature.signer is not None and signature.signer.subject == repository.certificate.subject
    references = signature.check("references").reason
    for path in (ORIGINAL, PAGE_ANNOT, CONTENT, "Doc_0/Signs/Signatures.xml", "OFD.xml"):
        assert f"/{path}" in references


def test_the_embedded_original_is_the_stored_file_and_verifies_on_its_own(
    repo: Repository, draft: DraftMaker, dev_keys, clock: Clock
) -> None:
    store, agency, _ = dev_keys
    identifier, copy = _issue_and_copy(repo, draft, dev_keys, clock)
    pkg = Package.load(copy)
    embedded = pkg.files[ORIGINAL]
    assert embedded == _stored(repo, identifier)
    (attachment,) = [
        a
        for a in pkg.xml("Doc_0/Attachs/Attachments.xml").findall("ofd:Attachment", NS)
        if a.get("Usage") == "original"
    ]
    assert (attachment.get("Name"), attachment.get("Format"), attachment.get("Visible")) == (
        "原件",
        "ofd",
        "true",
    )
    assert attachment.findtext("ofd:FileLoc", namespaces=NS) == "original.ofd"

    report = verify_file(embedded, trust=store.trust_store(), repository=repository_check(lambda: repo))
    assert report.indication is Indication.VALID, report.to_dict()
    (issuer,) = report.signatures
    assert issuer.seal is not None and issuer.seal.name == ISSUER_SEAL_NAME
    assert issuer.signer is not None and issuer.signer.subject == agency.certificate.subject
    result, reason = _checks(report)["content_match"]
    assert result is CheckResult.PASSED and reason.startswith("the file is the content")


def test_copy_carries_the_metadata_the_face_and_the_watermark(
    repo: Repository, draft: DraftMaker, dev_keys, clock: Clock
) -> None:
    _, agency, _ = dev_keys
    identifier, copy = _issue_and_copy(repo, draft, dev_keys, clock)
    at = _at(clock)
    original, pkg = Package.load(_stored(repo, identifier)), Package.load(copy)
    china = at + timedelta(hours=8)

    # metadata as in the original (CustomData, metadata.xml), then the copy's parameters
    def custom(p: Package) -> dict[str, str]:
        return {
            c.get("Name"): c.text
            for c in p.xml("OFD.xml").iterfind("ofd:DocBody/ofd:DocInfo/ofd:CustomDatas/*", NS)
        }

    theirs, ours = custom(original), custom(pkg)
    assert theirs["ZZBS"] == identifier
    assert list(ours) == [*theirs, *COPY_FIELDS]
    assert {k: ours[k] for k in theirs} == theirs
    assert {k: ours[k] for k in COPY_FIELDS} == {
        "FB_YYDW": REQUEST.using_unit,
        "FB_SXBH": REQUEST.matter,
        "FB_YT": REQUEST.purpose,
        "FB_SQR": REQUEST.requested_by,
        "FB_SCSJ": china.strftime("%Y-%m-%dT%H:%M:00+08:00"),
        "FB_ZZZT": "valid",
        "FB_YJSM3": hashlib.new("sm3", pkg.files[ORIGINAL]).hexdigest(),
    }
    assert pkg.files["Doc_0/Attachs/metadata.xml"] == original.files["Doc_0/Attachs/metadata.xml"]
    doc_info = pkg.xml("OFD.xml").find("ofd:DocBody/ofd:DocInfo", NS)
    assert doc_info.findtext("ofd:Title", namespaces=NS).endswith("（副本）")
    assert doc_info.findtext("ofd:DocID", namespaces=NS) != identifier

    # the face: the original's text, line for line, and the issuer's seal picture where the original shows it
    def texts(p: Package) -> list[tuple[str | None, str | None]]:
        return [
            (t.findtext("ofd:TextCode", namespaces=NS), t.get("Boundary"))
            for t in p.xml(CONTENT).iterfind(".//ofd:TextObject", NS)
        ]

    assert texts(pkg) == texts(original)
    issuer_stamp = original.xml(SIGNATURE).find("ofd:SignedInfo/ofd:StampAnnot", NS).get("Boundary")
    images = {
        i.get("Boundary"): i.get("ResourceID") for i in pkg.xml(CONTENT).iterfind(".//ofd:ImageObject", NS)
    }
    assert len(images) == len(list(original.xml(CONTENT).iterfind(".//ofd:ImageObject", NS))) + 1
    media = {
        m.get("ID"): m.findtext("ofd:MediaFile", namespaces=NS)
        for m in pkg.xml("Doc_0/DocumentRes.xml").iterfind(".//ofd:MultiMedia", NS)
    }
    agency_picture = parse_seal(agency.seal).picture.data
    assert pkg.files[f"Doc_0/Res/{media[images[issuer_stamp]]}"] == agency_picture

    # the watermark
    annot = _annot(copy)
    assert annot.get("Type") == "Watermark"
    assert annot.findtext("ofd:Remark", namespaces=NS).split("\n") == [
        "副本 · 仅供办理不动产登记使用",
        "郑州市不动产登记中心 · 事项 410100-2026-000123",
        china.strftime("%Y-%m-%d %H:%M"),
    ]
    drawn = {t.text for t in annot.iterfind("ofd:Appearance/ofd:TextObject/ofd:TextCode", NS)}
    assert drawn == set(annot.findtext("ofd:Remark", namespaces=NS).split("\n"))
    parameters = {p.get("Name"): p.text for p in annot.iterfind("ofd:Parameters/ofd:Parameter", NS)}
    assert parameters == {
        "identifier": identifier,
        "certificate_status": "valid",
        "using_unit": REQUEST.using_unit,
        "matter": REQUEST.matter,
        "purpose": REQUEST.purpose,
        "requested_by": REQUEST.requested_by,
        "made_at": china.strftime("%Y-%m-%dT%H:%M:00+08:00"),
    }


def test_repository_stamp_sits_bottom_right_clear_of_the_issuer_seal_picture(
    repo: Repository, draft: DraftMaker, dev_keys, clock: Clock
) -> None:
    _, _, repository = dev_keys
    identifier, copy = _issue_and_copy(repo, draft, dev_keys, clock)
    pkg, original = Package.load(copy), Package.load(_stored(repo, identifier))
    issuer = _box(original.xml(SIGNATURE).find("ofd:SignedInfo/ofd:StampAnnot", NS).get("Boundary"))
    ours = _box(pkg.xml(SIGNATURE).find("ofd:SignedInfo/ofd:StampAnnot", NS).get("Boundary"))
    picture = parse_seal(repository.seal).picture
    assert (ours.w, ours.h) == (picture.width_mm, picture.height_mm)
    width, height = (float(v) for v in pkg.xml("Doc_0/Document.xml").findtext(
        "ofd:CommonData/ofd:PageArea/ofd:PhysicalBox", namespaces=NS).split()[2:])  # fmt: skip
    assert ours.x + ours.w <= issuer.x or issuer.x + issuer.w <= ours.x  # side by side, no overlap
    assert ours.x + ours.w > width / 2 and ours.y > height / 2  # bottom right half
    assert ours.y + ours.h <= height and ours.x >= 0


def test_one_byte_of_the_watermark_breaks_the_repository_seal(
    repo: Repository, draft: DraftMaker, dev_keys, clock: Clock
) -> None:
    store, _, _ = dev_keys
    _, copy = _issue_and_copy(repo, draft, dev_keys, clock)
    files = dict(Package.load(copy).files)
    before = files[PAGE_ANNOT]
    files[PAGE_ANNOT] = before.replace(b"000123", b"000124", 1)
    assert sum(x != y for x, y in zip(before, files[PAGE_ANNOT], strict=True)) == 1
    report = verify_file(write_package(files.items()), trust=store.trust_store())
    assert report.indication is Indication.INVALID
    (ours,) = report.signatures
    references = ours.check("references")
    assert references.result is CheckResult.FAILED and PAGE_ANNOT in references.reason
    assert _checks(report)["embedded_original"][0] is CheckResult.PASSED  # the original itself is intact


def test_copy_of_a_revoked_certificate_says_so(
    repo: Repository, draft: DraftMaker, dev_keys, clock: Clock
) -> None:
    store, agency, _ = dev_keys
    identifier = _issue(repo, draft, agency)
    issuing.act(repo, identifier, Action.REVOKE, reason="行政处罚")
    copy = _copy(repo, identifier, dev_keys, clock)
    annot = _annot(copy)
    lines = annot.findtext("ofd:Remark", namespaces=NS).split("\n")
    assert lines[0] == "证照已吊销 · 非有效证照"
    assert lines[0] in {t.text for t in annot.iterfind("ofd:Appearance/ofd:TextObject/ofd:TextCode", NS)}
    assert {p.get("Name"): p.text for p in annot.iterfind("ofd:Parameters/ofd:Parameter", NS)}[
        "certificate_status"
    ] == "revoked"
    online = verify_file(copy, trust=store.trust_store(), repository=repository_check(lambda: repo))
    assert online.indication is Indication.INVALID  # the repository knows
    checks = _checks(online)
    assert checks["status"][0] is CheckResult.FAILED and "revoked" in checks["status"][1]
    assert checks["content_match"][0] is checks["embedded_original"][0] is CheckResult.PASSED
    assert [s.indication for s in online.signatures] == [Indication.VALID]
    offline = verify_file(copy, trust=store.trust_store())
    assert offline.indication is Indication.VALID  # the file is intact — and its watermark says 已吊销


def test_same_time_same_copy(repo: Repository, draft: DraftMaker, dev_keys, clock: Clock) -> None:
    _, agency, _ = dev_keys
    identifier = _issue(repo, draft, agency)
    first, second = (Package.load(_copy(repo, identifier, dev_keys, clock)).files for _ in range(2))
    value = "Doc_0/Signs/Sign_0/SignedValue.dat"  # an SM2 signature is randomised
    assert list(first) == list(second)
    assert {k: v for k, v in first.items() if k != value} == {k: v for k, v in second.items() if k != value}


# --- content_match of forged copies ---------------------------------------------------------------------------------


def test_a_copy_embedding_another_original_does_not_match_the_record(
    repo: Repository, draft: DraftMaker, dev_keys, clock: Clock
) -> None:
    store, agency, _ = dev_keys
    identifier = _issue(repo, draft, agency)
    other = _issue(repo, draft, agency, number="选字第410100202400093号")
    files = dict(Package.load(_copy(repo, identifier, dev_keys, clock)).files)
    files[ORIGINAL] = _stored(repo, other)
    forged = write_package(files.items())
    assert RepositoryStatusCheck(lambda: repo).content_digest_matches(identifier, forged) is False
    report = verify_file(forged, trust=store.trust_store(), repository=repository_check(lambda: repo))
    assert report.indication is Indication.INVALID
    checks = _checks(report)
    assert checks["content_match"][0] is CheckResult.FAILED and checks["content_match"][1].startswith(
        "copy (副本)"
    )
    assert checks["embedded_original"][0] is CheckResult.FAILED and other in checks["embedded_original"][1]


# --- what cannot be copied ------------------------------------------------------------------------------------------


def test_a_broken_original_is_not_copied(repo: Repository, draft: DraftMaker, dev_keys, clock: Clock) -> None:
    store, agency, _ = dev_keys
    make = file_maker(agency)

    def tampered(prepared: PreparedVersion) -> tuple[bytes, str]:
        data, media_type = make(prepared)
        files = dict(Package.load(data).files)
        files[CONTENT] = files[CONTENT].replace(b"</ofd:Page>", b"<!-- changed --></ofd:Page>")
        return write_package(files.items()), media_type

    identifier = issuing.issue(repo, draft(), file_maker=tampered).certificate.identifier
    with pytest.raises(CopyUnavailableError, match=r"does not verify \(INVALID: .*Content\.xml"):
        _copy(repo, identifier, dev_keys, clock)

    # an original the trust store cannot anchor is not certified either (INDETERMINATE)
    good = _issue(repo, draft, agency, number="选字第410100202400094号")
    with pytest.raises(CopyUnavailableError, match=r"does not verify \(INDETERMINATE"):
        make_copy(repo, good, REQUEST, key=dev_keys[2], trust=TrustStore(), at=_at(clock))
    assert verify_file(_stored(repo, good), trust=store.trust_store()).indication is Indication.VALID


def test_a_face_that_cannot_be_reproduced_is_not_copied(
    repo: Repository, draft: DraftMaker, dev_keys, clock: Clock
) -> None:
    _, agency, _ = dev_keys
    base = "https://zz.example.gov.cn"
    result = issuing.issue(repo, draft(), file_maker=file_maker(agency, verify_base_url=base))
    identifier = result.certificate.identifier
    with pytest.raises(CopyUnavailableError, match=r"Doc_0/Res/image_\d+\.png.*verify_base_url"):
        _copy(repo, identifier, dev_keys, clock)  # the default URL: another QR code
    copy = _copy(repo, identifier, dev_keys, clock, verify_base_url=base)
    assert Package.load(copy).files[ORIGINAL] == _stored(repo, identifier)


def test_certificates_without_an_ofd_file(
    repo: Repository, draft: DraftMaker, dev_keys, clock: Clock
) -> None:
    bare = issuing.issue(repo, draft(number="选字第410100202400091号")).certificate
    with pytest.raises(CopyUnavailableError, match="has no file"):
        _copy(repo, bare.identifier, dev_keys, clock)
    pdf = issuing.issue(
        repo,
        draft(number="选字第410100202400092号"),
        file=b"%PDF-1.7\n%%EOF\n",
        file_media_type="application/pdf",
    ).certificate
    assert pdf.file_media_type != OFD_MEDIA_TYPE
    with pytest.raises(CopyUnavailableError, match="not OFD"):
        _copy(repo, pdf.identifier, dev_keys, clock)
    other = bare.identifier[:-1] + ("0" if bare.identifier[-1] != "0" else "1")  # another check character
    with pytest.raises(CertificateNotFoundError):
        _copy(repo, other, dev_keys, clock)


def test_request_and_time_are_checked(repo: Repository, draft: DraftMaker, dev_keys, clock: Clock) -> None:
    store, agency, repository = dev_keys
    with pytest.raises(ValueError, match="using_unit"):
        CopyRequest(using_unit=" ", matter="1", purpose="办证", requested_by="x")
    with pytest.raises(ValueError, match="purpose is longer"):
        CopyRequest(using_unit="单位", matter="1", purpose="办" * 41, requested_by="x")
    with pytest.raises(ValueError, match="U\\+000A"):
        CopyRequest(using_unit="单位\n", matter="1\n2", purpose="办证", requested_by="x")
    assert CopyRequest(using_unit=" 单位 ", matter="1", purpose="办证", requested_by="x").using_unit == "单位"
    identifier = _issue(repo, draft, agency)
    trust = store.trust_store()
    with pytest.raises(ValueError, match="timezone-aware"):
        make_copy(repo, identifier, REQUEST, key=repository, trust=trust, at=datetime(2026, 11, 27, 10, 30))
    odd = CopyRequest(
        using_unit="\U0001f600单位", matter="1", purpose="办证", requested_by="x"
    )  # no face font
    with pytest.raises(ValueError, match="cannot draw"):
        make_copy(repo, identifier, odd, key=repository, trust=trust, at=_at(clock))


# --- independent checks ---------------------------------------------------------------------------------------------


@pytest.mark.openssl
def test_openssl_verifies_the_repository_seal(
    tmp_path: Path, repo: Repository, draft: DraftMaker, dev_keys, clock: Clock
) -> None:
    _, _, repository = dev_keys
    _, copy = _issue_and_copy(repo, draft, dev_keys, clock)
    assert_openssl_verifies_seal(tmp_path, Package.load(copy).files, repository.certificate)


def test_easyofd_opens_the_copy(
    tmp_path: Path, repo: Repository, draft: DraftMaker, dev_keys, clock: Clock, database_backend: str
) -> None:
    """easyofd (PyPI) reads the copy — face, issuer's seal picture, watermark annotation, repository seal,
    attachments — without error and draws its text (see tests/packaging/ofd/test_annotations.py for how it
    approximates annotations)."""
    if database_backend != "sqlite":
        pytest.skip("the rendering does not depend on the database: once is enough")
    identifier, copy = _issue_and_copy(repo, draft, dev_keys, clock)
    result = easyofd_render(copy, tmp_path, "copy")
    assert result["pages"] == 1
    assert f"证照标识：{identifier}" in result["text"][0]  # the face
    assert REQUEST.matter in result["text"][0]  # the watermark
    assert (tmp_path / "copy_0.png").is_file()


# --- keys ------------------------------------------------------------------------------------------------------------


def test_dev_keys_have_a_repository_signer_and_seal(dev_keys) -> None:
    store, agency, repository = dev_keys
    assert store.signer_entry("repository").certificate == repository.certificate
    assert "电子证照库 副本签章" in repository.certificate.subject
    seal = parse_seal(repository.seal)
    assert seal.name == DEV_REPOSITORY["seal_name"] and seal.es_id == DEV_REPOSITORY["es_id"]
    assert seal.match_signer(repository.certificate) and not seal.match_signer(agency.certificate)
    # the agency seals with its own key: signer and seal both named by its credit code
    assert agency.certificate == store.signer_entry(ISSUER.credit_code).certificate
    assert agency.certificate.organization_identifier == ISSUER.credit_code


def test_missing_repository_key_gives_an_actionable_error(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    init_dev_keys(store)
    shutil.rmtree(store.signers_dir / "repository")  # as a key store made before copies existed
    (store.seals_dir / "repository.esl").unlink()
    with pytest.raises(KeyStoreError) as raised:
        repository_sealing_key(store)
    message = str(raised.value)
    assert "certstore keys init --force" in message and "certstore keys import --name repository" in message
    assert "--store-as repository" in message


def test_copy_of_an_original_sealed_with_the_long_qr_path(
    repo: Repository, draft: DraftMaker, dev_keys, clock: Clock
) -> None:
    """Certificates sealed before the QR carried the short path (issue 15) show ``/v/<identifier>``: their face is
    laid out again with that long path, so their copies still prove the same face."""
    from certstore.packaging.face import lay_out_face
    from certstore.packaging.layout import FaceData
    from certstore.packaging.ofd import add_seal, build_ofd_files

    _, agency, _ = dev_keys

    def long_qr_maker(prepared: PreparedVersion) -> tuple[bytes, str]:
        data = FaceData.from_prepared(prepared)
        layout = lay_out_face(data, short_qr=False)
        assert "/v/1.2.156" in layout.extras["verify_url"]
        package = build_ofd_files(
            layout, metadata={k: str(v) for k, v in data.metadata.items()}, doc_id=data.identifier
        )
        assert layout.seal_box is not None
        sealed = add_seal(package, seal=agency.seal, signer=agency.signer, signer_certificate=agency.certificate,
                          stamp_box=layout.seal_box, protect="continue")  # fmt: skip
        return sealed, OFD_MEDIA_TYPE

    identifier = issuing.issue(repo, draft(), file_maker=long_qr_maker).certificate.identifier
    copy = _copy(repo, identifier, dev_keys, clock)
    store = dev_keys[0]
    report = verify_file(copy, trust=store.trust_store())
    assert report.indication is Indication.VALID, report.to_dict()
