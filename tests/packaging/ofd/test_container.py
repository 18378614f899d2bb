"""The strict ZIP container (``certstore/packaging/ofd/container.py``, canonical-package rules 1 and 2 of issue 16):
each way of making readers disagree is refused with a message that names the rule and the entry, the layouts
real OFD writers produce are accepted and read back byte for byte, and :func:`inflate` trusts no declaration.

Every archive is built with our own writer (``tests/support/zipwriter.py``) from a real signed package, the
ofdrw fixture ``ofdrw-sign__allprotected.ofd`` (``tests/support/zipvariants.py``).
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, replace

import pytest

from certstore.packaging.ofd.container import STORED, ZipEntry, fold_name, inflate, read_container
from certstore.packaging.ofd.limits import (
    DEFAULT_LIMITS,
    Limits,
    NonCanonicalPackageError,
    NotOfdError,
    OfdFormatError,
)
from certstore.packaging.ofd.reader import OfdReader
from tests.support.zipvariants import ACCEPTED, ATTACKS, base_members, base_package, unicode_comment_field
from tests.support.zipwriter import Member, extra_field, members_of, replaced, unicode_path_field, write_zip

RULE_1 = "canonical package rule 1 (one archive): "
RULE_2 = "canonical package rule 2 (names): "
PAGE = "Doc_0/Pages/Page_0/Content.xml"
DOCUMENT = "Doc_0/Document.xml"  # the fixture's first entry
_END = struct.Struct("<4s4H2IH")


def files_of(archive: bytes) -> dict[str, bytes]:
    """What the strict reader reads: file name → bytes (directories aside)."""
    return {
        e.name: inflate(archive, e) for e in read_container(archive, DEFAULT_LIMITS) if not e.is_directory
    }


def expected_files(members: list[Member]) -> dict[str, bytes]:
    return {m.raw_name.decode("utf-8"): m.data for m in members if not m.raw_name.endswith(b"/")}


def refusal(archive: bytes, rule: str) -> str:
    """The message of the refusal of ``archive``, which must name ``rule``."""
    with pytest.raises(NonCanonicalPackageError) as caught:
        read_container(archive, DEFAULT_LIMITS)
    message = str(caught.value)
    assert message.startswith(rule), message
    return message


def with_end(archive: bytes, **changes: int) -> bytes:
    """``archive`` (no archive comment) with fields of its end record changed."""
    names = ("disk", "cd_disk", "disk_entries", "entries", "size", "offset", "comment")
    values = dict(zip(names, _END.unpack_from(archive, len(archive) - _END.size)[1:], strict=True))
    values.update(changes)
    return archive[: -_END.size] + _END.pack(b"PK\x05\x06", *values.values())


def central_records(archive: bytes) -> tuple[int, int]:
    """(offset, size) of the central directory of ``archive`` (no archive comment)."""
    size, offset = _END.unpack_from(archive, len(archive) - _END.size)[5:7]
    return offset, size


BASE = base_members()


def test_the_base_package_is_read_back_as_written() -> None:
    """The ofdrw fixture itself and its rewrite by our writer read as the same 8 files (5 directories aside)."""
    original = base_package()
    entries = read_container(original, DEFAULT_LIMITS)
    assert len(entries) == 13 and sum(e.is_directory for e in entries) == 5
    assert files_of(original) == files_of(write_zip(BASE)) == expected_files(BASE)
    assert [e.name for e in read_container(write_zip(BASE), DEFAULT_LIMITS)] == [
        m.raw_name.decode() for m in BASE
    ]


# --- Rule 1: one archive -------------------------------------------------------------------------------------


def _duplicate_central_record(archive: bytes) -> bytes:
    """The first central record listed twice (both pointing at the same local header)."""
    offset, size = central_records(archive)
    name_length, extra_length, comment_length = struct.unpack_from("<3H", archive, offset + 28)
    record = archive[offset : offset + 46 + name_length + extra_length + comment_length]
    entries = _END.unpack_from(archive, len(archive) - _END.size)[4]
    body = archive[: offset + size] + record
    return body + _END.pack(b"PK\x05\x06", 0, 0, entries + 1, entries + 1, size + len(record), offset, 0)


def _record_disk(archive: bytes, disk: int) -> bytes:
    offset, _ = central_records(archive)
    patched = bytearray(archive)
    struct.pack_into("<H", patched, offset + 34, disk)
    return bytes(patched)


def _zip64_locator(archive: bytes) -> bytes:
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, 0, 1)
    return archive[: -_END.size] + locator + archive[-_END.size :]


def _ustar_at_257() -> bytes:
    """A first local header whose extra field puts ``ustar`` at byte 257 (where tar readers look)."""
    first = BASE[0]
    header = 30 + len(first.raw_name)
    padding = 257 - header - 4
    field = extra_field(0xCAFE, b"\0" * padding + b"ustar\x0000")
    return write_zip([replace(first, local_extra=field), *BASE[1:]])


def _deflated_with_trailing_stream_bytes() -> tuple[bytes, Member]:
    """A page whose declared compressed data runs 5 bytes past the end of its deflate stream."""
    page = next(m for m in BASE if m.raw_name == PAGE.encode())
    size = len(page.compressed()) + 5
    changed = replace(
        page, after=b"JUNK!", local={"compressed_size": size}, central={"compressed_size": size}
    )
    return write_zip([changed if m is page else m for m in BASE]), changed


RULE_1_CASES = {
    # (archive, what the message must also say)
    "prefix": (
        lambda: write_zip(BASE, prefix=b"junk before the archive"),
        "byte(s) before the first local header",
    ),
    "prefix-with-offsets": (
        lambda: write_zip(BASE, prefix=b"%junk" * 10, offsets_from_prefix=True),
        "byte(s) before the first local header",
    ),
    "prepended-forged-archive": (ATTACKS["prepended-archive"], "away from where its end record places it"),
    "prepended-forged-archive-with-offsets": (
        lambda: write_zip(
            BASE, prefix=write_zip(replaced(BASE, PAGE, data=b"<forged/>")), offsets_from_prefix=True
        ),
        "byte(s) at offset 0 belong to no entry of the central directory",
    ),
    "trailing-data": (
        lambda: write_zip(BASE, suffix=b"trailing"),
        "bytes after the end of the central directory",
    ),
    "hidden-local-entry-at-the-end": (
        ATTACKS["hidden-local-entry"],
        "belong to no entry of the central directory",
    ),
    "hidden-local-entry-in-the-middle": (
        lambda: write_zip([*BASE[:4], Member.of(PAGE + "x", b"<forged/>", listed=False), *BASE[4:]]),
        "belong to no entry of the central directory",
    ),
    "gap-between-entries": (
        lambda: write_zip(replaced(BASE, PAGE, after=b"hidden data")),
        "belong to no entry of the central directory",
    ),
    "local-entry-listed-twice": (
        lambda: _duplicate_central_record(write_zip(BASE)),
        f"entry {DOCUMENT!r} overlaps",
    ),
    "local-name-differs": (
        lambda: write_zip(replaced(BASE, PAGE, local={"raw_name": b"Doc_0/Pages/Page_0/Content.xmX"})),
        f"entry {PAGE!r}: its local header names b'Doc_0/Pages/Page_0/Content.xmX'",
    ),
    "local-method-differs": (
        lambda: write_zip(replaced(BASE, PAGE, local={"method": STORED})),
        f"entry {PAGE!r}: its local header says flags 0x0800, method 0",
    ),
    "local-flags-differ": (
        lambda: write_zip(replaced(BASE, PAGE, local={"flags": 0x0000})),
        f"entry {PAGE!r}: its local header says flags 0x0000",
    ),
    "local-crc-differs": (
        lambda: write_zip(replaced(BASE, PAGE, local={"crc": 1})),
        f"entry {PAGE!r}: its local header says CRC-32 00000001",
    ),
    "local-size-differs": (
        lambda: write_zip(replaced(BASE, PAGE, local={"size": 10})),
        f"entry {PAGE!r}: its local header says CRC-32",
    ),
    "local-compressed-size-differs": (
        lambda: write_zip(replaced(BASE, PAGE, local={"compressed_size": 10})),
        f"entry {PAGE!r}: its local header says CRC-32",
    ),
    "descriptor-disagrees": (
        lambda: write_zip(replaced(BASE, PAGE, descriptor=True, central={"crc": 1})),
        f"entry {PAGE!r}: its data descriptor does not say what the central directory says",
    ),
    "descriptor-and-local-values-disagree": (
        lambda: write_zip(replaced(BASE, PAGE, descriptor=True, local={"size": 7})),
        f"entry {PAGE!r}: its local header says",
    ),
    "stored-with-descriptor": (
        lambda: write_zip(replaced(BASE, PAGE, method=STORED, descriptor=True)),
        f"entry {PAGE!r} is stored with a data descriptor",
    ),
    "local-unicode-path-only": (
        lambda: write_zip(replaced(BASE, PAGE, local_extra=unicode_path_field(PAGE.encode(), PAGE))),
        f"entry {PAGE!r}: its local header and the central directory carry different Unicode Paths",
    ),
    "zip64-extra-field": (
        lambda: write_zip(replaced(BASE, PAGE, central_extra=extra_field(0x0001, bytes(16)))),
        f"entry {PAGE!r} (central directory): a ZIP64 extra field",
    ),
    "zip64-locator": (lambda: _zip64_locator(write_zip(BASE)), "a ZIP64 archive"),
    "zip64-entry-count": (
        lambda: with_end(write_zip(BASE), entries=0xFFFF, disk_entries=0xFFFF),
        "a ZIP64 archive",
    ),
    "multi-disk": (lambda: with_end(write_zip(BASE), disk=1), "a multi-disk (split) archive"),
    "entry-on-another-disk": (
        lambda: _record_disk(write_zip(BASE), 2),
        f"entry {DOCUMENT!r} starts on disk 2",
    ),
    "symbolic-link": (
        lambda: write_zip(replaced(BASE, PAGE, central={"external": 0o120777 << 16})),
        f"entry {PAGE!r} is a symbolic link",
    ),
    "extra-field-twice": (
        lambda: write_zip(
            replaced(BASE, PAGE, central_extra=extra_field(0xCAFE, b"a") + extra_field(0xCAFE, b"b"))
        ),
        f"entry {PAGE!r} (central directory): extra field 0xcafe appears twice",
    ),
    "extra-field-past-its-end": (
        lambda: write_zip(replaced(BASE, PAGE, local_extra=extra_field(0xCAFE, b"abc")[:-1])),
        f"entry {PAGE!r} (local header): extra field 0xcafe runs past its end",
    ),
    "extra-field-truncated": (
        lambda: write_zip(replaced(BASE, PAGE, central_extra=b"\xfe\xca")),
        f"entry {PAGE!r} (central directory): a truncated extra field",
    ),
    "version-needed-4.6": (
        lambda: write_zip(replaced(BASE, PAGE, central={"version_needed": 46})),
        f"entry {PAGE!r} needs ZIP version 4.6",
    ),
    "unknown-flag-bit": (
        lambda: write_zip(replaced(BASE, PAGE, flags=0x0810)),
        f"entry {PAGE!r} sets general-purpose flag bits 0x0010",
    ),
    "pdf-header-in-the-first-extra-field": (
        lambda: write_zip([replace(BASE[0], local_extra=extra_field(0xCAFE, b"%PDF-1.7\n")), *BASE[1:]]),
        "'%PDF-' at byte",
    ),
    "pdf-end-in-the-archive-comment": (lambda: write_zip(BASE, comment=b"\n%%EOF\n"), "'%%EOF' at byte"),
    "pdf-startxref-in-the-archive-comment": (
        lambda: write_zip(BASE, comment=b"startxref 0"),
        "'startxref' at byte",
    ),
    "tar-header-at-257": (_ustar_at_257, "'ustar' at byte 257"),
    "central-directory-under-declared": (
        lambda: with_end(write_zip(BASE), size=central_records(write_zip(BASE))[1] - 46),
        "the central directory is 46 byte(s) away from where its end record places it",
    ),
    "central-directory-over-declared": (
        lambda: with_end(write_zip(BASE), size=central_records(write_zip(BASE))[1] + 1),
        "the central directory overlaps its end record",
    ),
    "central-directory-offset-wrong": (
        lambda: with_end(write_zip(BASE), offset=central_records(write_zip(BASE))[0] - 1),
        "the central directory is 1 byte(s) away",
    ),
    "entry-count-too-small": (
        lambda: with_end(write_zip(BASE), entries=12, disk_entries=12),
        "byte(s) in the central directory belong to no record",
    ),
    "entry-count-too-large": (
        lambda: with_end(write_zip(BASE), entries=14, disk_entries=14),
        "central-directory record 14 of 14 is missing or damaged",
    ),
}


@pytest.mark.parametrize("case", RULE_1_CASES.values(), ids=RULE_1_CASES.keys())
def test_rule_1_refusals(case: tuple) -> None:
    """Each way of making the archive more (or other) than one ZIP, read one way, is refused under rule 1,
    with a message that says where (the entry, when there is one)."""
    build, says = case
    message = refusal(build(), RULE_1)
    assert says in message, message


def test_bytes_after_the_deflate_stream_are_refused_by_inflate() -> None:
    """Compressed data that runs on past the end of its deflate stream (a place to hide bytes the CRC does not
    cover) is accepted by the container — the declared sizes agree — and refused by :func:`inflate`."""
    archive, _ = _deflated_with_trailing_stream_bytes()
    entry = next(e for e in read_container(archive, DEFAULT_LIMITS) if e.name == PAGE)
    expected = "^" + re.escape(f"{RULE_1}entry {PAGE!r}: bytes after the end of its deflate stream")
    with pytest.raises(NonCanonicalPackageError, match=expected):
        inflate(archive, entry)


def test_encryption_and_methods_are_format_errors() -> None:
    """Encryption and a compression method other than stored/deflated: refused, naming the entry (not a rule:
    such a file is merely unsupported)."""
    for flags, says in ((0x0801, "is encrypted"), (0x0840, "is encrypted"), (0x2800, "is encrypted")):
        with pytest.raises(OfdFormatError, match=re.escape(f"ZIP entry {PAGE!r} {says}")):
            read_container(write_zip(replaced(BASE, PAGE, flags=flags)), DEFAULT_LIMITS)
    bzip2 = write_zip(replaced(BASE, PAGE, central={"method": 12}, local={"method": 12}))
    with pytest.raises(OfdFormatError, match=re.escape(f"ZIP entry {PAGE!r} uses compression method 12")):
        read_container(bzip2, DEFAULT_LIMITS)


def test_not_a_zip_at_all() -> None:
    """No end record: not a ZIP (unreadable, not a rule breach); an end record only: not a ZIP either."""
    for data in (b"", b"hello", b"PK\x03\x04" + bytes(100), _END.pack(b"PK\x05\x06", 0, 0, 0, 0, 0, 0, 0)):
        with pytest.raises(NotOfdError):
            read_container(data, DEFAULT_LIMITS)


def test_limits_are_checked_before_decompressing() -> None:
    """Declared sizes over the limits are refused by the container, before :func:`inflate` runs."""
    with pytest.raises(OfdFormatError, match=re.escape("13 ZIP entries exceed the limit of 12")):
        read_container(write_zip(BASE), Limits(max_entries=12))
    signed_value = "Doc_0/Signs/Sign_0/SignedValue.dat"
    with pytest.raises(
        OfdFormatError, match=re.escape(f"ZIP entry {signed_value!r} declares 17726 bytes, over")
    ):
        read_container(write_zip(BASE), Limits(max_entry_size=17725))


# --- Rule 2: names -------------------------------------------------------------------------------------------


def _named(raw: bytes, *, flags: int = 0x0800, data: bytes = b"x", **changes: object) -> bytes:
    return write_zip([*BASE, Member(raw, data, flags=flags, **changes)])  # type: ignore[arg-type]


def _folded_after_page(name: str) -> bytes:
    """A forged page under a name that folds to the page's, placed after the real one (extraction overwrites)."""
    return write_zip([*BASE, Member.of(name, b"<ofd:Page>FORGED</ofd:Page>")])


def _unicode_path(raw: str, says: str, *, crc_of: bytes | None = None) -> bytes:
    body = (
        b"\x01"
        + struct.pack("<I", zlib.crc32(crc_of if crc_of is not None else raw.encode()))
        + says.encode()
    )
    field = extra_field(0x7075, body)
    return write_zip(
        [*BASE, Member.of(raw, b"<ofd:Page>FORGED</ofd:Page>", local_extra=field, central_extra=field)]
    )


RULE_2_CASES = {
    "flagged-utf8-but-not-utf8": (
        lambda: _named(b"Doc_0/\xff\xfe.xml"),
        "b'Doc_0/\\xff\\xfe.xml' is flagged UTF-8 but",
    ),
    "gbk-name-without-flag": (
        lambda: _named("Doc_0/证照.xml".encode("gbk"), flags=0),
        "is neither flagged UTF-8 nor plain ASCII",
    ),
    "unicode-path-names-the-page": (
        ATTACKS["unicode-path-shadow"],
        f"entry 'Doc_0/Res/x.xml': its Unicode Path extra field (0x7075) says {PAGE!r}, not 'Doc_0/Res/x.xml'",
    ),
    "unicode-path-with-another-crc": (
        lambda: _unicode_path("Doc_0/Res/x.xml", "Doc_0/Res/x.xml", crc_of=b"other"),
        "entry 'Doc_0/Res/x.xml': its Unicode Path extra field (0x7075) says 'Doc_0/Res/x.xml'",
    ),
    "unicode-path-in-the-local-header-only": (
        lambda: write_zip(
            [
                *BASE,
                Member.of("Doc_0/Res/x.xml", b"x", local_extra=unicode_path_field(b"Doc_0/Res/x.xml", PAGE)),
            ]
        ),
        f"entry 'Doc_0/Res/x.xml' (local header): its Unicode Path extra field (0x7075) says {PAGE!r}",
    ),
    "unicode-comment-differs": (
        lambda: write_zip(
            replaced(BASE, PAGE, comment=b"page", central_extra=unicode_comment_field(b"page", "伪造"))
        ),
        f"entry {PAGE!r}: its Unicode Comment extra field (0x6375) says '伪造', not 'page'",
    ),
    "gbk-comment-without-flag": (
        lambda: write_zip(replaced(BASE, PAGE, flags=0, comment="页面".encode("gbk"))),
        f"entry {PAGE!r}: comment",
    ),
    "empty-name": (lambda: _named(b""), "an entry with an empty name"),
    "dot-slash": (lambda: _named(b"./OFD.xml"), "entry name './OFD.xml' is not normal"),
    "double-slash": (lambda: _named(b"Doc_0//Pages/x.xml"), "entry name 'Doc_0//Pages/x.xml' is not normal"),
    "dot-segment": (lambda: _named(b"Doc_0/./x.xml"), "entry name 'Doc_0/./x.xml' is not normal"),
    "traversal": (lambda: _named(b"Doc_0/../../x.xml"), "entry name 'Doc_0/../../x.xml' contains '..'"),
    "absolute": (lambda: _named(b"/OFD.xml"), "entry name '/OFD.xml' is an absolute path"),
    "drive-letter": (lambda: _named(b"C:/OFD.xml"), "entry name 'C:/OFD.xml' is an absolute path"),
    "backslash": (lambda: _named(b"Doc_0\\Pages\\x.xml"), "contains a backslash"),
    "control-character": (
        lambda: _named(b"Doc_0/a\x01b.xml"),
        "entry name 'Doc_0/a\\x01b.xml' contains a control",
    ),
    "nul": (lambda: _named(b"Doc_0/a\0b.xml"), "entry name 'Doc_0/a\\\\0b.xml' contains a control character"),
    "duplicate": (lambda: _folded_after_page(PAGE), f"duplicate entry {PAGE!r}"),
    "trailing-dot": (
        lambda: _folded_after_page(PAGE + "."),
        f"entries {PAGE!r} and {PAGE + '.'!r} are the same",
    ),
    "trailing-space": (
        lambda: _folded_after_page(PAGE + " "),
        f"entries {PAGE!r} and {PAGE + ' '!r} are the same",
    ),
    "ntfs-stream": (
        lambda: _folded_after_page(PAGE + "::$DATA"),
        f"entries {PAGE!r} and {PAGE + '::$DATA'!r} are the same",
    ),
    "case": (
        lambda: _folded_after_page(PAGE.upper()),
        f"entries {PAGE!r} and {PAGE.upper()!r} are the same",
    ),
    "folded-directory-segment": (
        lambda: _folded_after_page("doc_0/pages/page_0./content.xml"),
        "and 'doc_0/pages/page_0./content.xml' are the same",
    ),
    "unicode-normalisation": (
        lambda: write_zip(
            [*BASE, Member.of("Doc_0/Res/\u00e9.png", b"a"), Member.of("Doc_0/Res/e\u0301.png", b"b")]
        ),
        "entries 'Doc_0/Res/\u00e9.png' and 'Doc_0/Res/e\u0301.png' are the same",
    ),
    "segment-windows-reads-as-empty": (
        lambda: _named(b"Doc_0/.../x.xml"),
        "has a segment that Windows reads as empty",
    ),
    "file-that-is-also-a-directory": (
        lambda: write_zip([*BASE, Member.of("Doc_0/Res", b"a"), Member.of("Doc_0/Res/x.png", b"b")]),
        "'Doc_0/Res' is a file, and 'Doc_0/Res/x.png' needs it to be a directory",
    ),
    "file-folding-with-a-directory-entry": (
        lambda: write_zip([*BASE, Member.of("Doc_0/PAGES", b"forged")]),
        "entries 'Doc_0/Pages/' and 'Doc_0/PAGES' are the same",
    ),
    "file-that-is-a-folded-directory": (
        lambda: write_zip(
            [*(m for m in BASE if not m.raw_name.endswith(b"/")), Member.of("Doc_0/PAGES", b"x")]
        ),
        "'Doc_0/PAGES' is a file, and 'Doc_0/Pages/Page_0/Content.xml' needs it to be a directory",
    ),
    "directory-with-data": (
        lambda: write_zip([*BASE, Member.of("Doc_0/Res/", b"<forged/>", method=STORED)]),
        "directory entry 'Doc_0/Res/' holds data (9 bytes)",
    ),
    "deflated-directory-with-data": (
        lambda: write_zip([*BASE, Member.of("Doc_0/Res/", b"<forged/>")]),
        "directory entry 'Doc_0/Res/' holds data (9 bytes)",
    ),
}


@pytest.mark.parametrize("case", RULE_2_CASES.values(), ids=RULE_2_CASES.keys())
def test_rule_2_refusals(case: tuple) -> None:
    """Each name that readers would decode, normalise or fold differently is refused under rule 2, naming the
    entry."""
    build, says = case
    message = refusal(build(), RULE_2)
    assert says in message, message


@dataclass(frozen=True)
class _Stream(Member):
    """A member whose compressed bytes are given as they are (not produced from ``data``)."""

    stream: bytes = b""

    def compressed(self) -> bytes:
        return self.stream


@pytest.mark.parametrize(
    "directory",
    [
        Member.of("Doc_0/Tpls/", method=STORED, local={"crc": 5}, central={"crc": 5}),
        _Stream(b"Doc_0/Tpls/", method=8, stream=b"\x01\x00"),  # a stored-block header, not an empty stream
    ],
    ids=["stored-with-a-crc", "deflated-with-a-broken-stream"],
)
def test_a_directory_entry_is_checked_like_a_file(directory: Member) -> None:
    """A directory entry whose CRC-32 is not that of no bytes, or whose two compressed bytes are not a complete
    empty deflate stream, is refused: the other readers fail on it (zipfile: "Bad CRC-32"; unzip: "bad CRC";
    stream-unzip: an integrity or deflate error), so it is not one reading."""
    with pytest.raises(OfdFormatError):
        OfdReader.open(write_zip([*BASE, directory]))


def test_a_unicode_path_that_is_not_utf8_is_refused() -> None:
    """A Unicode Path field whose bytes are not UTF-8 does not "say" the raw name even when the raw name holds
    the replacement character (Python ≥ 3.12's zipfile refuses such an archive outright)."""
    raw = "Doc_0/Res/a\ufffd.txt".encode()
    body = b"\x01" + struct.pack("<I", zlib.crc32(raw)) + b"Doc_0/Res/a\xff.txt"
    field = extra_field(0x7075, body)
    refusal(write_zip([*BASE, Member(raw, b"x", local_extra=field, central_extra=field)]), RULE_2)


# --- Accepted: what real writers produce ------------------------------------------------------------------


@pytest.mark.parametrize("variant", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_legitimate_variants_are_accepted(variant) -> None:
    """Data descriptors (with and without their signature), deflate option bits, UTF-8 and plain ASCII names,
    Unicode Path fields that agree, directory entries, comments, a reordered central directory and an archive
    comment are all ways real writers lay out an OFD: accepted, and read back as exactly the written files."""
    archive = variant()
    assert files_of(archive) == expected_files(members_of(archive))
    assert files_of(archive).items() >= expected_files(BASE).items()


def test_entries_come_in_local_header_order_with_their_layout() -> None:
    """With the central directory reversed, the entries still come in the order of their local headers, each
    with its descriptor flag and the offsets of its header and data."""
    archive = ACCEPTED["all-variants-at-once"]()
    entries = read_container(archive, DEFAULT_LIMITS)
    assert [e.name for e in entries] == [m.raw_name.decode() for m in BASE]
    for entry in entries:
        assert archive[entry.header_offset : entry.header_offset + 4] == b"PK\x03\x04"
        assert bool(entry.flags & 0x0008) == (entry.method == 8 and not entry.is_directory)
        name_length, extra_length = struct.unpack_from("<2H", archive, entry.header_offset + 26)
        assert entry.data_offset == entry.header_offset + 30 + name_length + extra_length


# --- inflate ---------------------------------------------------------------------------------------------


def _entry(data: bytes, stream: bytes, *, method: int = 8, **changes: object) -> tuple[bytes, ZipEntry]:
    """``stream`` at offset 0 of a buffer, described as an entry holding ``data``."""
    entry = ZipEntry("Doc_0/x.xml", method, 0x0800, zlib.crc32(data), len(stream), len(data), 0, 0)
    return stream, replace(entry, **changes)


def _deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


DATA = b"<ofd:Page>" + "测试证照".encode() * 50 + b"</ofd:Page>"


def test_inflate_reads_stored_and_deflated() -> None:
    """The declared bytes, exactly."""
    assert inflate(*_entry(DATA, _deflate(DATA))) == DATA
    assert inflate(*_entry(DATA, DATA, method=STORED)) == DATA


def test_inflate_refuses_bytes_after_the_stream() -> None:
    """Bytes after the deflate stream's end inside the declared compressed size: rule 1."""
    with pytest.raises(
        NonCanonicalPackageError, match="^" + re.escape(f"{RULE_1}entry 'Doc_0/x.xml': bytes after the end")
    ):
        inflate(*_entry(DATA, _deflate(DATA) + b"hidden"))


def test_inflate_refuses_a_truncated_stream() -> None:
    """A deflate stream cut short (the declared size still unreached) is refused, not read as far as it goes."""
    stream = _deflate(DATA)
    with pytest.raises(
        OfdFormatError, match=re.escape("'Doc_0/x.xml' cannot be read: its deflate stream is cut short")
    ):
        inflate(*_entry(DATA, stream[: len(stream) // 2]))


def test_inflate_refuses_a_corrupt_stream() -> None:
    """Bytes that are no deflate stream: zlib's error becomes an OfdFormatError naming the entry."""
    with pytest.raises(OfdFormatError, match=re.escape("'Doc_0/x.xml' cannot be read: Error -3")):
        inflate(*_entry(DATA, b"\xff" * 40))


@pytest.mark.parametrize("method", [8, STORED], ids=["deflated", "stored"])
def test_inflate_refuses_crc_and_size_mismatches(method: int) -> None:
    """A CRC-32 or a size that does not match the bytes: refused, and never more than size + 1 bytes inflated."""
    stream = _deflate(DATA) if method == 8 else DATA
    with pytest.raises(OfdFormatError, match=re.escape("Bad CRC-32 for file 'Doc_0/x.xml'")):
        inflate(*_entry(DATA, stream, method=method, crc=zlib.crc32(DATA) ^ 1))
    with pytest.raises(
        OfdFormatError, match=re.escape(f"declares {len(DATA) + 1} bytes but holds {len(DATA)}")
    ):
        inflate(*_entry(DATA, stream, method=method, size=len(DATA) + 1))
    with pytest.raises(
        OfdFormatError, match=re.escape(f"inflates beyond its declared {len(DATA) - 1} bytes")
    ):
        inflate(*_entry(DATA, stream, method=method, size=len(DATA) - 1))


def test_inflate_stops_at_the_declared_size() -> None:
    """A bomb declared as 10 bytes inflates no further than 11 before it is refused."""
    stream = _deflate(bytes(50 * 1024 * 1024))
    with pytest.raises(OfdFormatError, match=re.escape("inflates beyond its declared 10 bytes")):
        inflate(*_entry(b"0123456789", stream))


# --- fold_name -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "folded"),
    [
        ("OFD.xml", "ofd.xml"),
        ("Doc_0/Pages/Page_0/Content.xml", "doc_0/pages/page_0/content.xml"),
        ("Doc_0/Pages/Page_0/Content.xml.", "doc_0/pages/page_0/content.xml"),
        ("Doc_0/Pages/Page_0/Content.xml . .", "doc_0/pages/page_0/content.xml"),
        ("Doc_0/Pages/Page_0/Content.xml::$DATA", "doc_0/pages/page_0/content.xml"),
        ("Doc_0/Pages/Page_0/Content.xml:hidden", "doc_0/pages/page_0/content.xml"),
        ("Doc_0./Pages /Page_0/Content.xml", "doc_0/pages/page_0/content.xml"),
        ("Doc_0/Pages/", "doc_0/pages"),
        ("Doc_0/Res/e\u0301.png", "doc_0/res/\u00e9.png"),
        ("Doc_0/Res/STRASSE.png", "doc_0/res/strasse.png"),
        ("Doc_0/Res/Straße.png", "doc_0/res/strasse.png"),
        ("Doc_0/Res/证照.png", "doc_0/res/证照.png"),
    ],
)
def test_fold_name(name: str, folded: str) -> None:
    """Names fold the way Windows extraction sees them: case (full case folding), NFC, trailing dots and spaces
    of every segment, NTFS stream suffixes; a directory's trailing slash goes."""
    assert fold_name(name) == folded


def test_name_verdicts_are_kept_only_for_accepted_small_lists() -> None:
    """The folding check is memoised for the small name lists certificates carry: a refusal is raised every
    time (never kept), and a list longer than the cached size is checked without being kept."""
    from certstore.packaging.ofd import container

    clashing = ("Doc_0/a.xml", "Doc_0/A.xml")
    for _ in range(2):
        with pytest.raises(NonCanonicalPackageError, match="same file where names fold"):
            container._check_folded_cached(clashing)
    container._check_folded_cached(("OFD.xml", "Doc_0/Document.xml"))
    assert container._check_folded_cached.cache_info().currsize >= 1
    before = container._check_folded_cached.cache_info().currsize
    many = [ZipEntry(f"f{i}.xml", 8, 0, 0, 0, 0, 0, 0) for i in range(container._FOLDED_CACHED_ENTRIES + 1)]
    container._check_folded(many)
    assert container._check_folded_cached.cache_info().currsize == before
