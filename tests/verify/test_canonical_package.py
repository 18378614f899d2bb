"""The canonical-package rule against the attacks of issue 16, each built from a certificate certstore issued:
whatever the ZIP trick, the verifier never calls the file VALID — offline (a signed status snapshot decides the
status) nor online (the repository) — and the finding names the rule it breaks (``docs/verification.md``, "One
file, one reading").

Every hostile file is written by our own ZIP writer (:mod:`tests.support.zipwriter`) from the members of the
issued file, so that each test changes exactly one thing. A file the reader refuses (rules 1 and 2) is INVALID
with the single problem ``package refused: canonical package rule N (…): …`` and no certificate section: the
pipeline never asks the repository about it, so ``content_match`` is not reached. A file the reader accepts but
whose coverage fails (rule 3) names the certificate; online its ``content_match`` then FAILS (the presented file's
SM3 is not the stored file's).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pyhanko.pdf_utils.reader import PdfFileReader

from api import create_app
from api.settings import Settings
from certstore.app import Application
from certstore.catalogue.definitions import shipped_entries
from certstore.checks import Check, CheckResult, Indication
from certstore.cli import main
from certstore.keystore import KeyStore
from certstore.records import example_draft
from certstore.services import certificates, status_snapshot, verification
from certstore.services.catalogue import load_shipped
from certstore.services.issuance import catalogue_file_maker
from certstore.services.keys import init_dev_keys
from certstore.verify import UnreadableFileError, VerificationReport, verify_file
from tests.support import issuing
from tests.support.clock import Clock
from tests.support.zipwriter import (
    Member,
    extra_field,
    members_of,
    replaced,
    unicode_path_field,
    write_zip,
)

PAGE = "Doc_0/Pages/Page_0/Content.xml"
IMAGE = "Doc_0/Res/image_3.png"  # the page's background (DocumentRes.xml: MediaFile image_3.png under BaseLoc Res)
RULE_1 = "package refused: canonical package rule 1 (one archive): "
RULE_2 = "package refused: canonical package rule 2 (names): "
SHADOW = "rule 3 (shadow): "
COVERAGE = "rule 3 (coverage): "


def minimal_pdf(text: str = "FORGED CERTIFICATE") -> bytes:
    """A small but complete PDF (one page showing ``text``) with a correct cross-reference table."""
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


@dataclass(frozen=True)
class Issued:
    """A certificate certstore issued (sealed with the development keys) and what verifying it needs."""

    app: Application
    keystore: KeyStore
    data_dir: Path
    identifier: str
    data: bytes
    #: A signed status snapshot in which the certificate is in force (offline verification).
    snapshot: bytes

    @property
    def members(self) -> list[Member]:
        return members_of(self.data)

    def file(self, name: str) -> bytes:
        return next(m.data for m in self.members if m.raw_name == name.encode())

    @property
    def forged_page(self) -> bytes:
        """The page with its heading replaced: what the attacker wants shown."""
        page = self.file(PAGE)
        forged = page.replace("中华人民共和国".encode(), "伪造的证照内容".encode())
        assert forged != page
        return forged

    @property
    def forged_ofd(self) -> bytes:
        """A whole OFD: the issued one with the forged page (its seal no longer matches)."""
        return write_zip(replaced(self.members, PAGE, data=self.forged_page))


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issued]:
    """One certificate issued in a data directory the CLI can open too (keys, SQLite database, blobs)."""
    data_dir = tmp_path_factory.mktemp("canonical") / "data"
    keystore = KeyStore(data_dir / "keys")
    init_dev_keys(keystore)
    app = Application.open(data_dir, upgrade_sqlite=True, public_url=issuing.PUBLIC_URL)
    try:
        clock = Clock()
        app.repo.clock = clock
        load_shipped(app.repo)
        draft = example_draft(shipped_entries()[0])
        result = issuing.issue(app, draft, file_maker=catalogue_file_maker(keystore))
        identifier = result.certificate.identifier
        stored = certificates.get(app.repo, identifier)
        assert stored.file_key is not None
        data = app.repo.blobs.get(stored.file_key)
        # a snapshot is as of the repository's clock: past the (real-clock) signing time of the seal
        clock.advance(minutes=1)
        snapshot = status_snapshot.build_snapshot(app, issuing.call()).data
        yield Issued(app, keystore, data_dir, identifier, data, snapshot)
    finally:
        app.close()


def offline(issued: Issued, data: bytes) -> VerificationReport:
    """``data`` verified without the repository: the status from the signed snapshot."""
    status = verification.offline_status(issued.app, issued.snapshot)
    return verify_file(data, trust=issued.app.trust, offline=status, now=issued.app.now())


def online(issued: Issued, data: bytes) -> VerificationReport:
    """``data`` verified with the repository (status and recorded content), as the API and pages do."""
    return verification.verify_presented(issued.app, data).report


def _check(report: VerificationReport, name: str) -> Check:
    assert report.certificate is not None
    return next(check for check in report.certificate.checks if check.name == name)


# --- the baseline --------------------------------------------------------------------------------------------


def test_the_issued_file_is_valid_offline_and_online(issued: Issued) -> None:
    """The untouched issued file is VALID both ways without any finding; online its content_match says that the
    SM3 of the presented file equals the SM3 of the stored one. (Re-writing it with our ZIP writer is still
    VALID offline: the writer adds nothing the rule refuses.)"""
    report = online(issued, issued.data)
    assert report.indication is Indication.VALID, report.to_dict()
    assert report.problems == ()
    content = _check(report, "content_match")
    assert content.result is CheckResult.PASSED
    assert content.reason.startswith(
        f"the file is the content the repository recorded for {issued.identifier}"
    )
    assert "the SM3 of the presented file (" in content.reason
    assert "equals the SM3 of the file stored for version 1" in content.reason
    report = offline(issued, issued.data)
    assert report.indication is Indication.VALID, report.to_dict()
    assert _check(report, "status").result is CheckResult.PASSED
    rewritten = offline(issued, write_zip(issued.members))
    assert rewritten.indication is Indication.VALID, rewritten.to_dict()
    assert rewritten.problems == ()


def test_a_repacked_file_matches_the_stored_content_by_its_entries(issued: Issued) -> None:
    """The issued entries packed into another (canonical) ZIP — other order, data descriptors: the file's SM3
    differs from the stored file's, so content_match compares the entries (names and SM3 of each) and says so."""
    repacked = write_zip(
        [replace(m, descriptor=m.method == zipfile.ZIP_DEFLATED) for m in reversed(issued.members)]
    )
    assert repacked != issued.data
    report = online(issued, repacked)
    assert report.indication is Indication.VALID, report.to_dict()
    content = _check(report, "content_match")
    assert content.result is CheckResult.PASSED
    assert content.reason.startswith(
        f"the file holds the content the repository recorded for {issued.identifier}"
    )
    assert "packed into another ZIP archive (the file's own SM3 differs)" in content.reason


# --- the attacks -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    """A hostile file made from the issued one, and the finding it must produce: ``problem`` starts the one
    problem that names the rule, ``detail`` is in it."""

    build: Callable[[Issued], bytes]
    problem: str
    detail: str

    @property
    def refused(self) -> bool:
        return self.problem.startswith("package refused: ")


def _unicode_path(where: str) -> Callable[[Issued], bytes]:
    """An extra entry ``notes.txt`` holding the forged page whose Unicode Path field names the page."""

    def build(issued: Issued) -> bytes:
        field = unicode_path_field(b"notes.txt", PAGE)
        extras = {"local_extra": field} if where in ("local", "both") else {}
        if where in ("central", "both"):
            extras["central_extra"] = field
        return write_zip([*issued.members, Member.of("notes.txt", issued.forged_page, **extras)])

    return build


def _added(name: str, data: Callable[[Issued], bytes] | None = None) -> Callable[[Issued], bytes]:
    """An extra entry ``name`` after every real one (default content: the forged page)."""
    return lambda issued: write_zip(
        [*issued.members, Member.of(name, (data or (lambda i: i.forged_page))(issued))]
    )


def _changed_page(**changes: object) -> Callable[[Issued], bytes]:
    """The page's entry with ``changes`` (``local={…}``, ``central={…}``) to its headers."""
    return lambda issued: write_zip(replaced(issued.members, PAGE, **changes))


def _forged_image(issued: Issued) -> bytes:
    return issued.file(IMAGE)[:-16] + b"FORGED BACKGROUND"


def _pdf_in_first_extra(issued: Issued, *, with_pdf: bool) -> bytes:
    """``%PDF-`` in an extra field of the first local header (inside the first KiB); optionally a PDF body after
    the end record, which a PDF viewer reads from the end."""
    header = extra_field(0x5044, b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    first, *rest = issued.members
    return write_zip([replace(first, local_extra=header), *rest], suffix=minimal_pdf() if with_pdf else b"")


ATTACKS: dict[str, Attack] = {
    # An entry with a harmless raw name whose Unicode Path extra field names the page (JSZip, unzip, Python ≥ 3.12)
    "unicode-path-local": Attack(
        _unicode_path("local"),
        RULE_2,
        "entry 'notes.txt' (local header): its Unicode Path extra field (0x7075) says "
        "'Doc_0/Pages/Page_0/Content.xml', not 'notes.txt'",
    ),
    "unicode-path-central": Attack(
        _unicode_path("central"),
        RULE_2,
        "entry 'notes.txt': its Unicode Path extra field (0x7075) says 'Doc_0/Pages/Page_0/Content.xml'",
    ),
    "unicode-path-both": Attack(
        _unicode_path("both"),
        RULE_2,
        "its Unicode Path extra field (0x7075) says 'Doc_0/Pages/Page_0/Content.xml'",
    ),
    # Unreferenced shadow copies (easyofd and readers resolving relative locations from the root)
    "shadow-page-from-root": Attack(
        _added("Pages/Page_0/Content.xml"),
        SHADOW,
        "/Pages/Page_0/Content.xml is not protected by any signature and the location 'Pages/Page_0/Content.xml' "
        "of /Doc_0/Pages/Page_0/Content.xml names it when read from the package root",
    ),
    "shadow-page-bak": Attack(
        _added(f"{PAGE}.bak"),
        SHADOW,
        "/Doc_0/Pages/Page_0/Content.xml.bak is not protected by any signature and its name contains the location",
    ),
    "shadow-page-in-folder": Attack(
        _added(f"x/{PAGE}"),
        SHADOW,
        "/x/Doc_0/Pages/Page_0/Content.xml is not protected by any signature and its name contains the location",
    ),
    "shadow-image-from-root": Attack(
        _added("image_3.png", _forged_image),
        SHADOW,
        "/image_3.png is not protected by any signature and the location 'image_3.png' of /Doc_0/Res/image_3.png "
        "names it when read from the package root",
    ),
    "shadow-image-in-folder": Attack(
        _added("backup/Res/image_3.png", _forged_image),
        SHADOW,
        "/backup/Res/image_3.png is not protected by any signature and its name contains the location "
        "'image_3.png' of /Doc_0/Res/image_3.png",
    ),
    # An unrelated entry nobody signed: at least INDETERMINATE, listed by name
    "uncovered-entry": Attack(
        _added("readme.txt", lambda issued: b"nothing to see"),
        COVERAGE,
        "not protected by any signature: /readme.txt",
    ),
    # Names that fold together on Windows, placed after the real entry (extraction overwrites the page)
    "fold-trailing-dot": Attack(
        _added(f"{PAGE}."), RULE_2, f"entries {PAGE!r} and '{PAGE}.' are the same file"
    ),
    "fold-trailing-space": Attack(
        _added(f"{PAGE} "), RULE_2, f"entries {PAGE!r} and '{PAGE} ' are the same file"
    ),
    "fold-ntfs-stream": Attack(
        _added(f"{PAGE}::$DATA"), RULE_2, f"entries {PAGE!r} and '{PAGE}::$DATA' are the same file"
    ),
    "fold-case": Attack(
        _added(PAGE.lower()), RULE_2, f"entries {PAGE!r} and {PAGE.lower()!r} are the same file"
    ),
    # What streaming readers see and the central directory does not list
    "local-entry-not-listed-last": Attack(
        lambda issued: write_zip([*issued.members, Member.of(PAGE, issued.forged_page, listed=False)]),
        RULE_1,
        "belong to no entry of the central directory (a local entry it does not list, or hidden data)",
    ),
    "local-entry-not-listed-first": Attack(
        lambda issued: write_zip([Member.of(PAGE, issued.forged_page, listed=False), *issued.members]),
        RULE_1,
        "byte(s) at offset 0 belong to no entry of the central directory",
    ),
    "forged-ofd-prepended": Attack(
        lambda issued: write_zip(issued.members, prefix=issued.forged_ofd),
        RULE_1,
        "byte(s) away from where its end record places it (bytes before the archive, or between its parts)",
    ),
    "forged-ofd-glued": Attack(
        lambda issued: write_zip(issued.members, prefix=issued.forged_ofd, offsets_from_prefix=True),
        RULE_1,
        "byte(s) at offset 0 belong to no entry of the central directory",
    ),
    "local-name-differs": Attack(
        lambda issued: write_zip(
            [*issued.members, Member.of("notes.txt", issued.forged_page, local={"raw_name": PAGE.encode()})]
        ),
        RULE_1,
        "entry 'notes.txt': its local header names b'Doc_0/Pages/Page_0/Content.xml'",
    ),
    # OFD/PDF polyglots
    # 41 = 30 (local header) + 7 (the name OFD.xml) + 4 (the extra field's ID and length)
    "pdf-header-in-first-extra-field": Attack(
        lambda issued: _pdf_in_first_extra(issued, with_pdf=False),
        RULE_1,
        "'%PDF-' at byte 41: a PDF header in the first KiB (PDF viewers open the file as a PDF) — a polyglot file",
    ),
    "pdf-header-in-first-extra-field-and-pdf-after-the-end": Attack(
        lambda issued: _pdf_in_first_extra(issued, with_pdf=True),
        RULE_1,
        "bytes after the end of the central directory (no end record ends the file: trailing data)",
    ),
    "pdf-in-archive-comment": Attack(
        lambda issued: write_zip(issued.members, comment=minimal_pdf()),
        RULE_1,
        "a PDF end-of-file marker in the last KiB (PDF viewers read the file from its end) — a polyglot file",
    ),
    "pdf-appended": Attack(
        lambda issued: write_zip(issued.members, suffix=minimal_pdf()),
        RULE_1,
        "bytes after the end of the central directory (no end record ends the file: trailing data)",
    ),
    # Robustness: malformed headers end as a rule, never as an internal error
    "version-needed-flipped": Attack(
        _changed_page(central={"version_needed": 0x14 ^ 0x80}),
        RULE_1,
        f"entry {PAGE!r} needs ZIP version 14.8 to be extracted",
    ),
    "directory-with-data": Attack(
        _added("Doc_0/Extra/", lambda issued: b"hidden"),
        RULE_2,
        "directory entry 'Doc_0/Extra/' holds data (6 bytes)",
    ),
    "directory-with-stored-data": Attack(
        lambda issued: write_zip([*issued.members, Member.of("Doc_0/Extra/", b"hidden", method=0)]),
        RULE_2,
        "directory entry 'Doc_0/Extra/' holds data (6 bytes)",
    ),
    "local-method-differs": Attack(
        _changed_page(local={"method": 0}),
        RULE_1,
        f"entry {PAGE!r}: its local header says flags 0x0800, method 0; the central directory says flags 0x0800, "
        "method 8",
    ),
    "local-flags-differ": Attack(
        _changed_page(local={"flags": 0}),
        RULE_1,
        f"entry {PAGE!r}: its local header says flags 0x0000, method 8",
    ),
    "local-crc-differs": Attack(
        _changed_page(local={"crc": 0x12345678}),
        RULE_1,
        f"entry {PAGE!r}: its local header says CRC-32 12345678",
    ),
    "local-compressed-size-differs": Attack(
        _changed_page(local={"compressed_size": 1}),
        RULE_1,
        f"entry {PAGE!r}: its local header says CRC-32",
    ),
    "local-size-differs": Attack(
        _changed_page(local={"size": 1}),
        RULE_1,
        f"entry {PAGE!r}: its local header says CRC-32",
    ),
}


def _assert_finding(report: VerificationReport, attack: Attack) -> None:
    assert report.indication is not Indication.VALID, report.to_dict()
    named = [problem for problem in report.problems if problem.startswith(attack.problem)]
    assert named, report.problems
    assert any(attack.detail in problem for problem in named), named
    if attack.refused:  # the reader refused the package: that is the one finding, nothing was read
        assert report.indication is Indication.INVALID
        assert report.problems == tuple(named) and len(named) == 1
        assert report.signatures == () and report.certificate is None
    elif attack.problem == SHADOW:
        assert report.indication is Indication.INVALID
    else:
        assert report.indication in (Indication.INDETERMINATE, Indication.INVALID)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_offline_never_valid(issued: Issued, name: str) -> None:
    """Offline (status from a signed snapshot in which the certificate is in force) each attack is refused with
    the rule it breaks, or — the reader having accepted the package — the coverage finding names it; the
    signatures themselves still verify, so nothing else could have caught it."""
    attack = ATTACKS[name]
    data = attack.build(issued)
    report = offline(issued, data)
    _assert_finding(report, attack)
    if not attack.refused:
        assert report.signatures and all(s.indication is Indication.VALID for s in report.signatures)
        assert _check(report, "status").result is CheckResult.PASSED
        assert _check(report, "content_match").result is CheckResult.SKIPPED
        expected = Indication.INVALID if attack.problem == SHADOW else Indication.INDETERMINATE
        assert report.indication is expected


@pytest.mark.parametrize("name", list(ATTACKS))
def test_online_never_valid(issued: Issued, name: str) -> None:
    """Online each attack gets the same finding; content_match is never PASSED: a refused package never
    reaches the repository (no certificate section: neither status nor content_match), and a package read
    fails content_match because its SM3 is not that of the stored file."""
    attack = ATTACKS[name]
    report = online(issued, attack.build(issued))
    _assert_finding(report, attack)
    if not attack.refused:
        assert report.indication is Indication.INVALID
        content = _check(report, "content_match")
        assert content.result is CheckResult.FAILED, content
        assert content.reason.startswith("SM3 of the presented file (")
        assert f"differs from the SM3 of the OFD file stored for {issued.identifier}" in content.reason


def test_the_polyglot_pdf_is_a_real_pdf() -> None:
    """The PDF the polyglot cases carry is one a PDF library opens, with the forged text on its page (so the
    attacks above hide a real document, not a few magic bytes)."""
    reader = PdfFileReader(io.BytesIO(minimal_pdf()))
    page = reader.root["/Pages"]["/Kids"][0]
    assert b"(FORGED CERTIFICATE) Tj" in page["/Contents"].data


def test_a_large_appended_pdf_is_refused_by_rule_1(issued: Issued) -> None:
    """A PDF longer than the largest archive comment appended to the issued file: the streaming readers still
    read the OFD and PDF viewers the PDF. The verifier must refuse it under rule 1 (trailing data), not call the
    file unreadable."""
    padding = b"%" + b"x" * 70_000 + b"\n"
    pdf = minimal_pdf()
    large = pdf.replace(b"%\xe2\xe3\xcf\xd3\n", b"%\xe2\xe3\xcf\xd3\n" + padding, 1)
    data = write_zip(issued.members, suffix=large)
    try:
        report = offline(issued, data)
    except UnreadableFileError as exc:
        pytest.fail(f"unreadable instead of refused: {exc}")
    assert report.problems == (
        f"{RULE_1}bytes after the end of the central directory (no end record ends the file: trailing data)",
    )


def _ascii_pdf(*, trailer: bool) -> bytes:
    """The PDF without its binary marker line (a valid UTF-8 comment); without ``startxref`` and ``%%EOF`` when
    not ``trailer`` — poppler rebuilds the cross-reference table of such a file and shows its page."""
    pdf = minimal_pdf().replace(b"%\xe2\xe3\xcf\xd3\n", b"")
    return pdf if trailer else pdf[: pdf.index(b"startxref")]


def _pdf_in_last_member(issued: Issued, **changes: object) -> bytes:
    *rest, last = issued.members
    return write_zip([*rest, replace(last, **changes)])


#: A PDF hidden in the bytes of the archive's own structures, where the foreign-signature windows (first KiB,
#: last KiB) do not look: ``pdftotext`` (poppler) prints "FORGED CERTIFICATE" for each of these files.
PDF_IN_HEADERS: dict[str, Callable[[Issued], bytes]] = {
    "archive-comment-without-trailer": lambda issued: write_zip(
        issued.members, comment=_ascii_pdf(trailer=False)
    ),
    "entry-comment": lambda issued: _pdf_in_last_member(issued, comment=_ascii_pdf(trailer=False)),
    "central-extra-field": lambda issued: _pdf_in_last_member(
        issued, central_extra=extra_field(0x5044, _ascii_pdf(trailer=False))
    ),
    "local-extra-field-of-the-last-entry": lambda issued: _pdf_in_last_member(
        issued, local_extra=extra_field(0x5044, _ascii_pdf(trailer=True))
    ),
}


@pytest.mark.parametrize("name", list(PDF_IN_HEADERS))
def test_a_pdf_in_the_archive_headers_is_refused(issued: Issued, name: str) -> None:
    """A PDF carried in an archive comment, an entry comment or an extra field — bytes no signature covers and
    that lenient PDF readers find anywhere in a file — makes the file a polyglot: refused under rule 1."""
    report = offline(issued, PDF_IN_HEADERS[name](issued))
    assert report.indication is Indication.INVALID, report.to_dict()
    assert len(report.problems) == 1 and report.problems[0].startswith(RULE_1), report.problems
    assert "%PDF-" in report.problems[0]


# --- the entry points ------------------------------------------------------------------------------------------


def test_the_command_line_exits_1(issued: Issued, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``certstore verify`` on the data directory (online) and ``--offline`` both exit 1 (INVALID) for a file
    whose Unicode Path field names the page, and print the rule."""
    path = tmp_path / "unicode-path.ofd"
    path.write_bytes(ATTACKS["unicode-path-both"].build(issued))
    for extra in ((), ("--offline",)):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main(["--data-dir", str(issued.data_dir), "verify", str(path), *extra])
        out = capsys.readouterr().out
        assert exited.value.code == 1, out
        assert out.startswith(f"INVALID  {path.name} (OFD, ")
        assert "canonical package rule 2 (names)" in out


def test_the_public_verification_endpoint(issued: Issued, tmp_path: Path) -> None:
    """``POST /api/v1/public/verify`` answers the same report: INVALID, the rule-2 refusal, no certificate
    section; the issued file itself is VALID there."""
    settings = Settings(data_dir=tmp_path, public_url=issuing.PUBLIC_URL, batch_worker=False)
    api = create_app(settings, repo=issued.app.repo, keystore=issued.keystore)
    with TestClient(api, raise_server_exceptions=False) as client:
        hostile = client.post(
            "/api/v1/public/verify", files={"file": ("c.ofd", ATTACKS["unicode-path-both"].build(issued))}
        )
        good = client.post("/api/v1/public/verify", files={"file": ("c.ofd", issued.data)})
    assert hostile.status_code == 200, hostile.text
    report = hostile.json()
    assert report["indication"] == "INVALID"
    assert len(report["problems"]) == 1 and report["problems"][0].startswith(RULE_2)
    assert report.get("certificate") is None
    assert good.status_code == 200 and good.json()["indication"] == "VALID", good.text
