"""Mutation test of one issued OFD (issue 4 "Must show"): every single-byte flip inside a signed part, every
removed entry, added displayed content and a seal swapped in from another agency are INVALID with the right
failing check; an added file nothing references is reported as uncovered."""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certstore.catalogue import HolderType
from certstore.catalogue.definitions import shipped_entry
from certstore.crypto.sm2 import SM2PrivateKey
from certstore.crypto.trust import TrustStore
from certstore.crypto.x509 import CertificateProfile, issue_certificate
from certstore.keystore import KeyStore, SignerRole
from certstore.packaging.face import lay_out_face
from certstore.packaging.layout import FaceData
from certstore.packaging.ofd import add_seal, build_ofd
from certstore.records import EXAMPLE_HOLDERS, example_draft, prepare_version
from certstore.seal import make_seal, sign_seal
from certstore.services import certificates
from certstore.services.catalogue import list_entries, load_shipped
from certstore.services.issuance import SealingKey, file_maker
from certstore.services.keys import init_dev_keys
from certstore.services.verification import repository_check
from certstore.store.blobs import FileBlobStore
from certstore.store.db import Database
from certstore.store.repository import Repository
from certstore.verify import UnreadableFileError, VerificationReport, verify_file
from tests.seal.seal_builders import tiny_picture
from tests.support import issuing

CODE = "11410100990000025A001"  # 建筑工程施工许可证
SIGN_DIR = "Doc_0/Signs/Sign_0/"


@dataclass
class Issued:
    ofd: bytes
    trust: TrustStore
    repo: Repository
    other: SealingKey  # another agency's key and seal, from the same root
    agency: SealingKey


def _seal_for(store: KeyStore, signer: str, name: str, es_id: str) -> bytes:
    maker = store.signer_of_role(SignerRole.SEAL_MAKER)
    entry = store.signer_entry(signer)
    now = datetime.now(UTC).replace(microsecond=0)
    return make_seal(
        maker=store.signer(maker.name), maker_certificate=maker.certificate, es_id=es_id, name=name, seal_type=1,
        signer_certificates=[entry.certificate], picture=tiny_picture(), valid_start=now - timedelta(minutes=1),
        valid_end=now + timedelta(days=30),
    )  # fmt: skip


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> Issued:
    root: Path = tmp_path_factory.mktemp("mutations")
    store = KeyStore(root / "keys")
    init_dev_keys(store)
    ca = store.signer_entry("root-ca")
    other_key = SM2PrivateKey.generate()
    now = datetime.now(UTC)
    other_cert = issue_certificate(
        {"country_name": "CN", "organization_name": "另一个发证机关", "common_name": "另一个发证机关 签章人"},
        other_key.public_key, issuer=ca.certificate, issuer_signer=store.signer("root-ca"),
        profile=CertificateProfile.SIGNER, not_before=now - timedelta(minutes=5), not_after=now + timedelta(days=60),
    )  # fmt: skip
    store.add_signer(
        "other", role=SignerRole.SIGNER, key=other_key, certificate=other_cert, chain=(ca.certificate,)
    )
    # the issuer's signer, with a seal of a tiny picture (every byte of the seal is flipped below)
    issuer = shipped_entry(CODE).issuer
    agency = store.signer_entry(issuer.credit_code)
    agency_key = SealingKey(store.signer(agency.name), agency.certificate, agency.chain,
                            _seal_for(store, agency.name, f"{issuer.name}专用章", "41010000000002"))  # fmt: skip
    other = SealingKey(store.signer("other"), other_cert, (ca.certificate,),
                       _seal_for(store, "other", "另一个发证机关专用章", "41010000000003"))  # fmt: skip
    database = Database(f"sqlite:///{root / 'certstore.db'}")
    database.upgrade()
    repo = Repository(db=database, blobs=FileBlobStore(root / "blobs"), holder_key=os.urandom(32))
    load_shipped(repo)
    entry = next(e for e in list_entries(repo) if e.code == CODE)
    cert = issuing.issue(repo, example_draft(entry), file_maker=file_maker(agency_key))
    ofd = repo.blobs.get(cert.certificate.file_key or "")
    issued = Issued(ofd, store.trust_store(), repo, other, agency_key)
    assert _verify(issued, ofd, online=True).indication.value == "VALID"
    return issued


def _entries(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _rezip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()  # stored: thousands of rezips, each would deflate the face picture again
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return out.getvalue()


def _verify(issued: Issued, data: bytes, *, online: bool = False) -> VerificationReport:
    check = repository_check(lambda: issued.repo) if online else None
    return verify_file(data, trust=issued.trust, repository=check)


def _failures(report: VerificationReport) -> list[tuple[str, str]]:
    document = report.to_dict()
    found = [
        (c["name"], c["reason"])
        for s in document["signatures"]
        for c in s["checks"]
        if c["result"] == "FAILED"
    ]
    if document["certificate"]:
        found += [
            (c["name"], c["reason"]) for c in document["certificate"]["checks"] if c["result"] == "FAILED"
        ]
    return found + [("problem", p) for p in document["problems"]]


def _positions(size: int, every: bool) -> list[int]:
    if every:
        return list(range(size))
    step = max(1, size // 37)  # protected files: a spread of positions (SM3 makes each one as good as all)
    return sorted(set(range(0, size, step)) | {0, size - 1})


def test_every_byte_flip_in_signed_parts_is_invalid(issued: Issued) -> None:
    files = _entries(issued.ofd)
    undetected: list[tuple[str, int]] = []
    wrong_check: list[tuple[str, int, list[tuple[str, str]]]] = []
    flips = 0
    for name, content in files.items():
        if name == "Doc_0/Signs/Signatures.xml":
            continue  # not covered in "continue" mode by design: later seals must be able to add themselves
        # Every byte of the signature's own files (their parsing is what a flip exercises); a spread of positions
        # in the files the references protect (SM3 makes each position as good as any other).
        every = name in (SIGN_DIR + "Signature.xml", SIGN_DIR + "SignedValue.dat")
        for position in _positions(len(content), every):
            mutated = bytearray(content)
            mutated[position] ^= 0x01
            report = _verify(issued, _rezip({**files, name: bytes(mutated)}))
            flips += 1
            if report.indication.value != "INVALID":
                undetected.append((name, position))
                continue
            failures = _failures(report)
            if not name.startswith(SIGN_DIR) and not any(name in reason for _, reason in failures):
                wrong_check.append((name, position, failures[:2]))
    assert flips > 1500, flips
    assert undetected == []
    assert wrong_check == []  # a changed file is named by the check that failed


def test_every_removed_entry_is_invalid(issued: Issued) -> None:
    files = _entries(issued.ofd)
    for name in files:
        if name == "OFD.xml":  # without its entry point a ZIP is no OFD at all: unreadable (CLI exit 3)
            with pytest.raises(UnreadableFileError, match=r"OFD\.xml"):
                _verify(issued, _rezip({k: v for k, v in files.items() if k != name}))
            continue
        if name == "Doc_0/Signs/Signatures.xml":
            report = _verify(issued, _rezip({k: v for k, v in files.items() if k != name}))
            assert report.indication.value == "INVALID"  # no signature left at all
            continue
        report = _verify(issued, _rezip({k: v for k, v in files.items() if k != name}))
        assert report.indication.value == "INVALID", name
        assert any(name in reason for _, reason in _failures(report)), (name, _failures(report))


def test_added_displayed_content_is_invalid(issued: Issued) -> None:
    files = _entries(issued.ofd)
    page = files["Doc_0/Pages/Page_0/Content.xml"]
    forged_text = page.replace(
        b"</ofd:Layer>",
        b'<ofd:TextObject ID="9999" Boundary="20 20 80 10" Font="2" Size="5"><ofd:TextCode X="0" Y="5">'
        + "注销".encode()
        + b"</ofd:TextCode></ofd:TextObject></ofd:Layer>",
        1,
    )
    assert forged_text != page
    report = _verify(issued, _rezip({**files, "Doc_0/Pages/Page_0/Content.xml": forged_text}))
    assert report.indication.value == "INVALID"
    assert any(n == "references" and "Content.xml" in r for n, r in _failures(report))
    document = files["Doc_0/Document.xml"]
    with_page = document.replace(
        b"</ofd:Pages>", b'<ofd:Page ID="9998" BaseLoc="Pages/Page_1/Content.xml"/></ofd:Pages>', 1
    )
    assert with_page != document
    report = _verify(issued, _rezip({**files, "Doc_0/Document.xml": with_page,
                                     "Doc_0/Pages/Page_1/Content.xml": page}))  # fmt: skip
    assert report.indication.value == "INVALID"
    assert any("Document.xml" in r for _, r in _failures(report))


def test_unreferenced_added_file_is_reported_uncovered(issued: Issued) -> None:
    files = _entries(issued.ofd)
    report = _verify(issued, _rezip({**files, "Doc_0/notes.txt": "附加说明".encode()}))
    assert any("Doc_0/notes.txt" in p for p in report.to_dict()["problems"])


def test_seal_swapped_from_another_agency(issued: Issued) -> None:
    files = _entries(issued.ofd)
    signature_xml = files[SIGN_DIR + "Signature.xml"]
    # 1. Another agency's seal signature over the same Signature.xml: the seal copy no longer matches.
    swapped = sign_seal(seal=issued.other.seal, signer=issued.other.signer, signer_certificate=issued.other.certificate,
                        data=signature_xml, property_info="/" + SIGN_DIR + "Signature.xml")  # fmt: skip
    report = _verify(issued, _rezip({**files, SIGN_DIR + "SignedValue.dat": swapped}))
    assert report.indication.value == "INVALID"
    assert "seal_copy" in [n for n, _ in _failures(report)]
    # 2. Also swap the seal copy: now the Seal.esl reference fails.
    report = _verify(
        issued,
        _rezip({**files, SIGN_DIR + "SignedValue.dat": swapped, SIGN_DIR + "Seal.esl": issued.other.seal}),
    )
    assert report.indication.value == "INVALID"
    assert any("Seal.esl" in r for n, r in _failures(report) if n == "references")
    # 3. The whole face re-sealed by the other agency: cryptographically sound, but not the repository's record.
    holder = EXAMPLE_HOLDERS[HolderType.LEGAL_PERSON]
    cert = certificates.list_by_holder(issued.repo, holder.id_type, holder.id_number)[0]
    entry = next(e for e in list_entries(issued.repo) if e.code == CODE)
    draft = example_draft(entry)
    prepared = prepare_version(
        entry, draft, version=1, holder_key=issued.repo.holder_key, serial_key=issued.repo.serial_key
    )
    layout = lay_out_face(FaceData.from_prepared(prepared))
    resealed = add_seal(build_ofd(layout, metadata=dict(cert.metadata), doc_id=cert.identifier), seal=issued.other.seal,
                        signer=issued.other.signer, signer_certificate=issued.other.certificate,
                        stamp_box=layout.seal_box, protect="continue")  # type: ignore[arg-type]  # fmt: skip
    report = _verify(issued, resealed, online=True)
    assert report.indication.value == "INVALID"
    assert "content_match" in [n for n, _ in _failures(report)]
