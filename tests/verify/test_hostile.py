"""Hostile input (issue 4 item 6): every case is refused or reported with a clear reason — never a crash, a hang or
a VALID verdict — and each finishes in well under a second (asserted)."""

from __future__ import annotations

import gc
import random
import re
import struct
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from certstore.checks import CheckResult, Indication
from certstore.crypto.trust import TrustStore
from certstore.packaging.ofd.reader import Limits, NotOfdError, OfdFormatError, OfdReader
from certstore.verify import OfdOptions, UnreadableFileError, VerificationReport, verify_file
from tests.seal.seal_builders import Hierarchy, make_hierarchy
from tests.support.zipwriter import Member, write_zip
from tests.verify.builders import (
    DECL,
    NS,
    PAGE,
    SIGNATURE_XML,
    SIGNATURES_XML,
    content_files,
    entries_of,
    fixture,
    ofd_xml,
    sealed_ofd,
    with_entries,
    zip_bytes,
)

MiB = 1024 * 1024
BUDGET = 1.0  # seconds per hostile case


@pytest.fixture(scope="module")
def h() -> Hierarchy:
    return make_hierarchy()


@contextmanager
def fast() -> Iterator[None]:
    """The block runs within :data:`BUDGET`. The cyclic garbage collector is paused meanwhile: a full collection
    of the whole test session's heap (seconds, late in a run) is not the verifier's work on the hostile input."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        yield
        elapsed = time.perf_counter() - start
    finally:
        if collecting:
            gc.enable()
    assert elapsed < BUDGET, f"took {elapsed:.2f} s"


def refused(
    data: bytes, *, limits: Limits | None = None, trust: TrustStore | None = None
) -> VerificationReport:
    """Verify ``data`` in the time budget; the report must be INVALID without any signature verified."""
    with fast():
        report = verify_file(
            data, trust=trust or TrustStore(), ofd_options=OfdOptions(limits=limits or Limits())
        )
    assert report.indication is Indication.INVALID, report.to_dict()
    return report


def reason_of(report: VerificationReport) -> str:
    assert len(report.problems) == 1, report.problems
    return report.problems[0]


def minimal(**extra: bytes) -> list[tuple[str, bytes]]:
    """An unsigned one-page package plus ``extra`` entries (names given as keyword arguments via ``**{...}``)."""
    files = {**content_files(), "OFD.xml": ofd_xml(signatures=False)}
    return [*files.items(), *extra.items()]


# --- Size and zip bombs ------------------------------------------------------------------------------------


def test_oversized_file() -> None:
    data = zip_bytes(minimal()) + bytes(50 * MiB)  # a ZIP (its end record is searched near the end) made huge
    report = refused(b"PK\x03\x04" + data)
    assert reason_of(report) == f"file of {len(data) + 4} bytes exceeds the {50 * MiB}-byte limit"


def test_zip_bomb_by_ratio() -> None:
    report = refused(zip_bytes(minimal(**{"Doc_0/bomb.xml": bytes(20 * MiB)})))
    assert "'Doc_0/bomb.xml' declares a compression ratio of" in reason_of(report)
    assert "over the limit of 200:1 (zip bomb)" in reason_of(report)


def test_zip_bomb_by_total() -> None:
    noise = random.Random(1).randbytes(300 * 1024)  # incompressible: no ratio problem
    entries = minimal(**{f"Doc_0/Res/{n}.bin": noise for n in range(4)})
    report = refused(zip_bytes(entries), limits=Limits(max_total_size=1 * MiB))
    assert "declare more than 1048576 bytes in total" in reason_of(report)
    assert reason_of(report).endswith("over the total limit (zip bomb)")


def _patch_declared_size(data: bytes, name: str, size: int, *, local: bool = True) -> bytes:
    """Change the uncompressed size of ``name`` in the central directory and (``local``) in its local header too,
    so that the two tell the same lie."""
    patched = bytearray(data)
    encoded = name.encode()
    offset = 0
    while True:
        offset = patched.index(b"PK\x01\x02", offset)
        name_length = struct.unpack_from("<H", patched, offset + 28)[0]
        if patched[offset + 46 : offset + 46 + name_length] == encoded:
            struct.pack_into("<I", patched, offset + 24, size)
            if local:
                struct.pack_into("<I", patched, struct.unpack_from("<I", patched, offset + 42)[0] + 22, size)
            return bytes(patched)
        offset += 46


def test_declared_size_smaller_than_content() -> None:
    """A size under-declared (to slip past the caps) in both headers cannot make us inflate more than it says;
    under-declared in the central directory only, the local header's disagreement refuses it first (rule 1)."""
    data = zip_bytes(minimal(**{"Doc_0/big.xml": bytes(30 * MiB)}))
    report = refused(_patch_declared_size(data, "Doc_0/big.xml", 1000))
    assert (
        reason_of(report)
        == "package refused: ZIP entry 'Doc_0/big.xml' inflates beyond its declared 1000 bytes"
    )
    report = refused(_patch_declared_size(data, "Doc_0/big.xml", 1000, local=False))
    assert reason_of(report).startswith(
        "package refused: canonical package rule 1 (one archive): entry 'Doc_0/big.xml': its local header says "
    )
    assert reason_of(report).endswith(
        "→ 31457280 bytes; the central directory says CRC-32 f99c62a6, 30586 → 1000 bytes"
    )


def test_declared_size_larger_than_content() -> None:
    """A size over-declared in both headers: the bytes fall short of it; in the central directory only: rule 1."""
    data = zip_bytes(minimal(**{"Doc_0/x.xml": b"<x/>"}))
    report = refused(_patch_declared_size(data, "Doc_0/x.xml", 5000))
    assert reason_of(report) == (
        "package refused: ZIP entry 'Doc_0/x.xml' declares 5000 bytes but holds 4: sizes do not match"
    )
    report = refused(_patch_declared_size(data, "Doc_0/x.xml", 5000, local=False))
    assert reason_of(report) == (
        "package refused: canonical package rule 1 (one archive): entry 'Doc_0/x.xml': its local header says "
        "CRC-32 1226842b, 6 → 4 bytes; the central directory says CRC-32 1226842b, 6 → 5000 bytes"
    )


def test_entry_over_the_absolute_cap() -> None:
    noise = random.Random(2).randbytes(400 * 1024)  # a plausible ratio once the size is inflated to 65 MiB
    data = _patch_declared_size(zip_bytes(minimal(**{"Doc_0/Res/x.bin": noise})), "Doc_0/Res/x.bin", 65 * MiB)
    assert reason_of(refused(data)) == (
        f"package refused: ZIP entry 'Doc_0/Res/x.bin' declares {65 * MiB} bytes, over the per-entry limit of "
        f"{64 * MiB}"
    )


def test_too_many_entries() -> None:
    entries = minimal(**{f"Doc_0/Res/{n}.txt": b"x" for n in range(2_000)})
    report = refused(zip_bytes(entries))
    assert reason_of(report) == f"package refused: {len(entries)} ZIP entries exceed the limit of 2000"


# --- Entry names -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../x.xml", "entry name '../x.xml' contains '..' (path traversal)"),
        ("Doc_0/../../etc/passwd", "entry name 'Doc_0/../../etc/passwd' contains '..' (path traversal)"),
        ("/etc/passwd", "entry name '/etc/passwd' is an absolute path"),
        ("C:/Windows/x.dll", "entry name 'C:/Windows/x.dll' is an absolute path"),
        (
            "Doc_0\\..\\x.xml",
            "entry name 'Doc_0\\\\..\\\\x.xml' contains a backslash (a path separator on Windows)",
        ),
    ],
    ids=["traversal", "nested-traversal", "absolute", "drive", "backslash"],
)
def test_dangerous_entry_names(name: str, message: str) -> None:
    """Names that escape the extraction directory or that readers split differently: rule 2 (names)."""
    report = refused(zip_bytes(minimal(**{name: b"x"})))
    assert reason_of(report) == f"package refused: canonical package rule 2 (names): {message}"


def test_nul_in_entry_name() -> None:
    """A NUL inside a name (C readers stop at it, others keep it): rule 2, shown escaped."""
    data = zip_bytes(minimal(**{"Doc_0/aXb.xml": b"x"})).replace(b"Doc_0/aXb.xml", b"Doc_0/a\0b.xml")
    report = refused(data)
    assert reason_of(report) == (
        "package refused: canonical package rule 2 (names): entry name 'Doc_0/a\\\\0b.xml' contains a control "
        "character"
    )


def test_duplicate_entry() -> None:
    """Two entries named OFD.xml (readers keep the first or the last): rule 2."""
    with pytest.warns(UserWarning, match="Duplicate name"):
        data = zip_bytes([*minimal(), ("OFD.xml", ofd_xml(identifier="other"))])
    assert (
        reason_of(refused(data))
        == "package refused: canonical package rule 2 (names): duplicate entry 'OFD.xml'"
    )


def test_duplicate_after_normalisation() -> None:
    """A second name for OFD.xml that readers normalise differently: refused for not being normal already."""
    data = zip_bytes([*minimal(), ("./OFD.xml", b"<x/>")])
    assert reason_of(refused(data)) == (
        "package refused: canonical package rule 2 (names): entry name './OFD.xml' is not normal (an empty or '.' "
        "segment: readers differ)"
    )


def test_duplicate_after_windows_folding() -> None:
    """A second OFD.xml that Windows extraction folds onto the first (trailing dot), placed after it."""
    data = zip_bytes([*minimal(), ("OFD.xml.", ofd_xml(identifier="other"))])
    assert reason_of(refused(data)) == (
        "package refused: canonical package rule 2 (names): entries 'OFD.xml' and 'OFD.xml.' are the same file "
        "where names fold (case, trailing dots or spaces, ':' streams): extraction keeps only one of them"
    )


def test_unsupported_compression() -> None:
    """bzip2 as :mod:`zipfile` writes it (version needed 4.6, which Info-ZIP unzip 6 skips): rule 1; declared
    with an older version needed, the method itself is refused."""
    data = zip_bytes(minimal(), compression=zipfile.ZIP_BZIP2)
    assert reason_of(refused(data)) == (
        "package refused: canonical package rule 1 (one archive): entry 'OFD.xml' needs ZIP version 4.6 to be "
        "extracted (readers that stop at 4.6 skip it)"
    )
    members = [Member.of(name, payload, method=zipfile.ZIP_BZIP2) for name, payload in minimal()]
    assert reason_of(refused(write_zip(members))) == (
        "package refused: ZIP entry 'OFD.xml' uses compression method 12; only stored (0) and deflated (8) are "
        "accepted"
    )


# --- XML ---------------------------------------------------------------------------------------------------

BILLION_LAUGHS = (
    '<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">' for i in range(1, 10))
    + "]>"
)


def test_billion_laughs() -> None:
    entries = [
        ("OFD.xml", ofd_xml(signatures=False, doctype=BILLION_LAUGHS)),
        *list(content_files().items())[1:],
    ]
    report = refused(zip_bytes(entries))
    assert reason_of(report).startswith("package refused: OFD.xml: XML with a DOCTYPE declaration refused")


def test_external_entity() -> None:
    xxe = f'{DECL}<!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]><ofd:Page xmlns:ofd="{NS}">&x;</ofd:Page>'
    entries = dict(minimal())
    entries[PAGE] = xxe.encode()
    report = refused(zip_bytes(entries.items()))
    assert report.problems[0].startswith(f"structure: {PAGE}: XML with a DOCTYPE declaration refused")
    assert "root:" not in str(report.to_dict())  # nothing of /etc/passwd leaked


def test_utf16_doctype() -> None:
    xml = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY e "e">]><ofd:OFD xmlns:ofd="x"/>'
    entries = [("OFD.xml", xml.encode("utf-16")), *list(content_files().items())[1:]]
    assert "DOCTYPE declaration refused" in reason_of(refused(zip_bytes(entries)))


def test_deep_nesting() -> None:
    entries = dict(minimal())
    entries[PAGE] = (f'<ofd:Page xmlns:ofd="{NS}">' + "<a>" * 200 + "</a>" * 200 + "</ofd:Page>").encode()
    report = refused(zip_bytes(entries.items()))
    assert report.problems[0] == f"structure: {PAGE}: XML nested deeper than 128 elements"
    entries[PAGE] = ("<a>" * 100_000 + "</a>" * 100_000).encode()  # stored: deflated, it is a ratio bomb
    assert (
        "Excessive depth" in refused(zip_bytes(entries.items(), compression=zipfile.ZIP_STORED)).problems[0]
    )


# --- Locations and references --------------------------------------------------------------------------------


def test_baseloc_pointing_outside(h: Hierarchy) -> None:
    """A signature whose BaseLoc points outside the package fails its package check; the real Signature.xml,
    now named by nothing, is listed as uncovered."""
    built = sealed_ofd(h, signatures_entries=[("s1", "Seal", "../../../etc/passwd")])
    with fast():
        report = verify_file(built.package, trust=h.trust)
    assert report.indication is Indication.INVALID
    package = report.signature("s1").check("package")
    assert package.result is CheckResult.FAILED
    assert package.reason == (
        "Doc_0/Signs/Signatures.xml Signature 's1' BaseLoc: location '../../../etc/passwd' points outside the package"
    )
    # the real Signature.xml is now listed by nothing: reported as uncovered (rule 3)
    assert f"rule 3 (coverage): not protected by any signature: /{SIGNATURE_XML}" in report.problems


def test_reference_to_a_missing_file(h: Hierarchy) -> None:
    files = content_files()
    built = sealed_ofd(h, files=files)
    entries = [(n, d) for n, d in entries_of(built.package) if n != "Doc_0/Res/base.png"]
    with fast():
        report = verify_file(zip_bytes(entries), trust=h.trust)
    assert report.indication is Indication.INVALID
    references = report.signature("s1").check("references")
    assert references.result is CheckResult.FAILED
    assert references.reason == (
        "1 of 7 reference(s) fail: /Doc_0/Res/base.png: '/Doc_0/Res/base.png' (Doc_0/Res/base.png) is not in the "
        "package"
    )


def test_tampered_page_names_the_file(h: Hierarchy) -> None:
    built = sealed_ofd(h)
    tampered = with_entries(
        built.package, {PAGE: built.files[PAGE].replace("测试证照".encode(), "伪造证照".encode())}
    )
    with fast():
        report = verify_file(tampered, trust=h.trust)
    assert report.indication is Indication.INVALID
    assert report.signature("s1").check("references").reason == (
        f"1 of 7 reference(s) fail: /{PAGE}: SM3 digest differs, the file was changed after signing"
    )


# --- Signature wrapping --------------------------------------------------------------------------------------


def test_signature_that_does_not_cover_the_displayed_page(h: Hierarchy) -> None:
    """An intact signature that leaves the page out: INDETERMINATE, the page named under rule 3 (coverage)."""
    files = content_files()
    built = sealed_ofd(h, files=files, protect=[n for n in files if n != PAGE])
    with fast():
        report = verify_file(built.package, trust=h.trust)
    assert report.signature("s1").indication is Indication.VALID  # the signature itself is intact …
    assert report.indication is Indication.INDETERMINATE  # … but it does not protect what is shown
    assert report.problems == (f"rule 3 (coverage): not protected by any signature: /{PAGE} (page content)",)


def test_second_ofd_xml_differing_in_case(h: Hierarchy) -> None:
    """A case-insensitive reader (Windows, some viewers) may open ``ofd.XML`` instead of the signed OFD.xml:
    refused under rule 2 (names), before any signature is checked."""
    built = sealed_ofd(h)
    forged = ofd_xml(identifier="1.2.156.3005.2.FORGED")
    report = refused(with_entries(built.package, {"ofd.XML": forged}), trust=h.trust)
    assert report.signatures == ()
    assert reason_of(report) == (
        "package refused: canonical package rule 2 (names): entries 'OFD.xml' and 'ofd.XML' are the same file "
        "where names fold (case, trailing dots or spaces, ':' streams): extraction keeps only one of them"
    )


def test_signed_value_wrapped_from_another_signature(h: Hierarchy) -> None:
    """SignedValue.dat copied from another package: dataHash no longer matches this Signature.xml."""
    first = sealed_ofd(h)
    second = sealed_ofd(h, files=content_files(page_text="另一证照"))
    wrapped = with_entries(
        second.package,
        {"Doc_0/Signs/Sign_0/SignedValue.dat": first.files["Doc_0/Signs/Sign_0/SignedValue.dat"]},
    )
    with fast():
        report = verify_file(wrapped, trust=h.trust)
    assert report.indication is Indication.INVALID
    assert report.signature("s1").check("data_hash").result is CheckResult.FAILED


def test_signature_listed_twice(h: Hierarchy) -> None:
    built = sealed_ofd(
        h, signatures_entries=[("s1", "Seal", f"/{SIGNATURE_XML}"), ("s2", "Seal", f"/{SIGNATURE_XML}")]
    )
    with fast():
        report = verify_file(built.package, trust=h.trust)
    assert report.indication is Indication.INVALID
    assert report.signature("s1").indication is Indication.VALID
    assert report.signature("s2").check("package").reason == (
        f"{SIGNATURES_XML} Signature 's2' BaseLoc: {SIGNATURE_XML} is already the Signature.xml of 's1'"
    )


# --- Work bounds: a small file must not cause a lot of work ----------------------------------------------


def test_too_many_signatures(h: Hierarchy) -> None:
    entries = [(f"s{n}", "Seal", f"/Doc_0/Signs/Sign_{n}/Signature.xml") for n in range(101)]
    report = refused(sealed_ofd(h, signatures_entries=entries).package)
    assert reason_of(report) == f"package refused: {SIGNATURES_XML}: 101 signatures exceed the limit of 100"


def test_one_large_file_referenced_many_times(h: Hierarchy) -> None:
    """2,000 References to one 8 MiB file: each file is digested once per method."""
    files = {**content_files(), "Doc_0/Res/big.bin": random.Random(3).randbytes(8 * MiB)}
    built = sealed_ofd(h, files=files)
    xml = built.files[SIGNATURE_XML]
    start = xml.index(b'<ofd:Reference FileRef="/Doc_0/Res/big.bin">')
    end = xml.index(b"</ofd:Reference>", start) + len(b"</ofd:Reference>")
    flood = xml[:start] + xml[start:end] * 1_990 + xml[end:]
    with fast():
        report = verify_file(with_entries(built.package, {SIGNATURE_XML: flood}), trust=h.trust)
    assert report.indication is Indication.INVALID  # Signature.xml changed: dataHash fails
    assert report.signature("s1").check("references").result is CheckResult.PASSED
    assert report.signature("s1").check("data_hash").result is CheckResult.FAILED


def test_warnings_are_capped(h: Hierarchy) -> None:
    files = content_files()
    pages = "".join(f'<ofd:Page ID="{n}" BaseLoc="Pages/Missing_{n}/Content.xml"/>' for n in range(5_000))
    files["Doc_0/Document.xml"] = (
        f'{DECL}<ofd:Document xmlns:ofd="{NS}"><ofd:Pages>{pages}</ofd:Pages></ofd:Document>'
    ).encode()
    with fast():
        report = verify_file(sealed_ofd(h, files=files).package, trust=h.trust)
    assert len(report.problems) == 101
    assert report.problems[-1] == "4900 further warning(s) not listed"


# --- Not an OFD at all, and random damage --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file"),
        (b"hello, world" * 10, "neither an OFD (ZIP) nor a PDF file"),
        (
            zip_bytes([("word/document.xml", b"<w/>")]),
            "a ZIP archive without OFD.xml at its root: not an OFD package",
        ),
    ],
    ids=["empty", "garbage", "zip-without-ofd"],
)
def test_unreadable_input(data: bytes, message: str) -> None:
    with fast(), pytest.raises(UnreadableFileError, match=re.escape(message)):
        verify_file(data, trust=TrustStore())


def test_truncated_zip_is_unreadable() -> None:
    data = fixture("ofdrw-sign__allprotected.ofd")
    with fast(), pytest.raises(UnreadableFileError):
        verify_file(data[: len(data) // 2], trust=TrustStore())


def test_reader_raises_only_format_errors() -> None:
    with pytest.raises(NotOfdError):
        OfdReader.open(b"not a zip")
    with pytest.raises(OfdFormatError, match="path traversal"):
        OfdReader.open(zip_bytes(minimal(**{"../x": b""})))


@pytest.mark.parametrize("seed", range(3))
def test_random_damage_never_crashes_and_never_passes(seed: int) -> None:
    original = fixture("ofdrw-sign__allprotected.ofd")
    rng = random.Random(seed)
    with fast():
        for _ in range(40):
            damaged = bytearray(original)
            for _ in range(rng.randint(1, 8)):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            if bytes(damaged) == original:
                continue
            try:
                report = verify_file(bytes(damaged), trust=TrustStore())
            except UnreadableFileError:
                continue
            assert report.indication is not Indication.VALID
