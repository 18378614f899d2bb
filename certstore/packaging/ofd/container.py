"""The ZIP container of an OFD package, read strictly: one file, one reading (the canonical-package rule).

A ZIP archive can be read in more than one way. :mod:`zipfile` trusts the central directory and skips whatever
lies before the archive; streaming readers (Java's ``ZipInputStream``, ``stream-unzip``) walk the local headers
from byte 0 and never look at the central directory; Info-ZIP ``unzip`` and Python ≥ 3.12 take a name from the
Unicode Path extra field (0x7075) over the raw one; extraction on Windows folds ``Content.xml.`` and
``Content.xml::$DATA`` into ``Content.xml``; a PDF viewer looks for ``%PDF-`` in the first KiB and ``%%EOF`` at
the end. A verifier that reads one way while the person relying on the file reads another verifies the wrong
file. :func:`read_container` therefore accepts only archives on which all those readings agree, and refuses
everything else with :class:`~.limits.NonCanonicalPackageError`, whose message names the rule
(``docs/verification.md``, "One file, one reading"):

**Rule 1 (one archive).** The file is exactly one ZIP from byte 0 to the end of its end-of-central-directory
record: the first local header at byte 0, no byte that no entry accounts for (no prefix, no gap, no hidden local
entry, no trailing data), every local header listed once in the central directory and agreeing with it (raw
name, method, flags, CRC-32 and sizes, or a data descriptor that carries them; the naming extra fields); one disk,
no ZIP64, no encryption, only stored and deflated entries, no stored entry with a data descriptor (a streaming
reader cannot find its end), no symbolic links; and no other format's signature where its readers look for it
(``%PDF-`` in the first KiB or anywhere in the archive's headers, extra fields and comments, ``%%EOF`` /
``startxref`` in the last KiB, ``ustar`` at byte 257).

**Rule 2 (names).** Each name is UTF-8 under the UTF-8 flag or plain ASCII; a Unicode Path (0x7075) or Unicode
Comment (0x6375) extra field must say exactly what the raw name or comment says; names are already normal (no
``./``, ``//``, ``..``, leading ``/``, backslash, drive letter, control character); names stay distinct when
folded the way Windows extraction folds them (case, trailing dots and spaces, ``:`` streams, Unicode NFC), and no
file shares its folded name with a directory; a directory entry holds no data.

The declared sizes are checked against :class:`~.limits.Limits` here too, before anything is decompressed;
:func:`inflate` then decompresses one entry under its declared size and checks it against the CRC-32.
"""

from __future__ import annotations

import re
import struct
import unicodedata
import zlib
from dataclasses import dataclass
from functools import lru_cache

from .limits import Limits, NonCanonicalPackageError, NotOfdError, OfdFormatError

__all__ = ["ZipEntry", "fold_name", "inflate", "read_container"]

STORED, DEFLATED = 0, 8

_LOCAL = struct.Struct("<4s5H3I2H")  # signature, version, flags, method, time, date, crc, csize, usize, n, e
_CENTRAL = struct.Struct("<4s6H3I5H2I")  # ... n, e, comment, disk, internal, external, offset
_END = struct.Struct(
    "<4s4H2IH"
)  # signature, disk, cd disk, disk entries, entries, cd size, cd offset, comment
_LOCAL_MAGIC, _CENTRAL_MAGIC, _END_MAGIC = b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"
_DESCRIPTOR_MAGIC, _ZIP64_LOCATOR_MAGIC = b"PK\x07\x08", b"PK\x06\x07"
_DESCRIPTOR = struct.Struct("<3I")

_UTF8_FLAG, _DESCRIPTOR_FLAG = 0x0800, 0x0008
#: Flag bits an OFD entry may carry: deflate options (1, 2), data descriptor (3), UTF-8 names (11).
_ALLOWED_FLAGS = 0x0002 | 0x0004 | _DESCRIPTOR_FLAG | _UTF8_FLAG
#: The newest "version needed to extract" (low byte) accepted: 4.5. Above it Info-ZIP unzip skips the entry.
_MAX_VERSION_NEEDED = 45

_ZIP64_EXTRA, _UNICODE_PATH, _UNICODE_COMMENT = 0x0001, 0x7075, 0x6375
_UNIX_FILE_TYPE, _UNIX_SYMLINK = 0o170000, 0o120000
_UNIX_HOSTS = (3, 19)  # "version made by" hosts whose external attributes carry a Unix mode (Unix, OS X)

#: Other formats' signatures where their readers look (rule 1): (signature, first offset, last offset or None
#: for "to the end"), offsets counted from the start (≥ 0) or from the end (< 0) of the file.
_FOREIGN_SIGNATURES: tuple[tuple[bytes, int, int | None, str], ...] = (
    (b"%PDF-", 0, 1024, "a PDF header in the first KiB (PDF viewers open the file as a PDF)"),
    (
        b"%%EOF",
        -1024,
        None,
        "a PDF end-of-file marker in the last KiB (PDF viewers read the file from its end)",
    ),
    (b"startxref", -1024, None, "a PDF cross-reference pointer in the last KiB"),
    (b"ustar", 257, 262, "a tar header at byte 257 (tar readers list other files)"),
)


@dataclass(frozen=True)
class ZipEntry:
    """One entry, as its central-directory record and its local header (which agree) describe it."""

    name: str
    method: int
    flags: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int
    #: Where the entry's (compressed) data starts in the file.
    data_offset: int

    @property
    def is_directory(self) -> bool:
        return self.name.endswith("/")


def _archive_rule(message: str) -> NonCanonicalPackageError:
    return NonCanonicalPackageError(f"canonical package rule 1 (one archive): {message}")


def _name_rule(message: str) -> NonCanonicalPackageError:
    return NonCanonicalPackageError(f"canonical package rule 2 (names): {message}")


# --- the end record -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _End:
    offset: int
    entries: int
    directory_size: int
    directory_offset: int


def _end_record(data: bytes, limits: Limits) -> _End:
    """The end-of-central-directory record that ends exactly at the end of the file."""
    floor = max(0, len(data) - _END.size - 0xFFFF)
    position = len(data)
    found_any = False
    while (position := data.rfind(_END_MAGIC, floor, position)) >= 0:
        found_any = True
        if position + _END.size <= len(data):
            _sig, disk, cd_disk, disk_entries, entries, size, offset, comment = _END.unpack_from(
                data, position
            )
            if position + _END.size + comment == len(data):
                if data[max(0, position - 20) : position - 16] == _ZIP64_LOCATOR_MAGIC:
                    raise _archive_rule("a ZIP64 archive (an OFD package never needs ZIP64)")
                if disk or cd_disk or disk_entries != entries:
                    raise _archive_rule("a multi-disk (split) archive")
                if entries == 0xFFFF or size == 0xFFFFFFFF or offset == 0xFFFFFFFF:
                    raise _archive_rule("a ZIP64 archive (an OFD package never needs ZIP64)")
                if entries > limits.max_entries:
                    raise OfdFormatError(f"{entries} ZIP entries exceed the limit of {limits.max_entries}")
                if size > limits.max_entries * limits.max_directory_bytes_per_entry:
                    raise OfdFormatError(
                        f"ZIP central directory of {size} bytes exceeds the limit of "
                        f"{limits.max_entries * limits.max_directory_bytes_per_entry} bytes"
                    )
                return _End(position, entries, size, offset)
    if found_any or data.rfind(_END_MAGIC, 0, floor) >= 0:
        raise _archive_rule(
            "bytes after the end of the central directory (no end record ends the file: trailing data)"
        )
    raise NotOfdError("not a ZIP archive (no end-of-central-directory record)")


# --- names and extra fields ----------------------------------------------------------------------------------


def _decode_name(raw: bytes, flags: int, what: str) -> str:
    if flags & _UTF8_FLAG:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _name_rule(f"{what} {raw!r} is flagged UTF-8 but is not UTF-8") from None
    if not raw.isascii():
        raise _name_rule(
            f"{what} {raw!r} is neither flagged UTF-8 nor plain ASCII (readers decode it as CP437, GBK or UTF-8, "
            "each differently)"
        )
    return raw.decode("ascii")


def _extra_fields(extra: bytes, where: str) -> dict[int, bytes]:
    """The extra-field records, which must tile the field exactly, each header ID once."""
    fields: dict[int, bytes] = {}
    position = 0
    while position < len(extra):
        if position + 4 > len(extra):
            raise _archive_rule(f"{where}: a truncated extra field")
        header_id, length = struct.unpack_from("<2H", extra, position)
        body = extra[position + 4 : position + 4 + length]
        if len(body) != length:
            raise _archive_rule(f"{where}: extra field 0x{header_id:04x} runs past its end")
        if header_id in fields:
            raise _archive_rule(f"{where}: extra field 0x{header_id:04x} appears twice")
        fields[header_id] = body
        position += 4 + length
    if _ZIP64_EXTRA in fields:
        raise _archive_rule(f"{where}: a ZIP64 extra field (an OFD package never needs ZIP64)")
    return fields


def _check_unicode_field(fields: dict[int, bytes], header_id: int, raw: bytes, text: str, where: str) -> None:
    """A Unicode Path / Comment field (Info-ZIP: version 1, CRC-32 of the raw bytes, UTF-8) must say what the
    raw bytes say: readers that honour it would otherwise show another name."""
    body = fields.get(header_id)
    if body is None:
        return
    kind = "Unicode Path" if header_id == _UNICODE_PATH else "Unicode Comment"
    said = body[5:].decode("utf-8", errors="replace") if len(body) >= 5 else None
    if (
        len(body) < 5
        or body[5:] != text.encode("utf-8")
        or body[0] != 1
        or struct.unpack_from("<I", body, 1)[0] != zlib.crc32(raw)
    ):
        raise _name_rule(f"{where}: its {kind} extra field (0x{header_id:04x}) says {said!r}, not {text!r}")


_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f]")


@lru_cache(maxsize=4096)  # pure, and names recur from file to file; a refusal is not kept
def _normal_name(name: str) -> None:
    """Refuse a name that is dangerous or that readers would normalise (rule 2)."""
    shown = name.replace("\0", "\\0")
    if not name or name in ("/", "."):
        raise _name_rule(f"an entry with an empty name ({shown!r})")
    if _CONTROL_CHARACTER.search(name):
        raise _name_rule(f"entry name {shown!r} contains a control character")
    if "\\" in name:
        raise _name_rule(f"entry name {shown!r} contains a backslash (a path separator on Windows)")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":" and name[0].isascii() and name[0].isalpha()):
        raise _name_rule(f"entry name {shown!r} is an absolute path")
    segments = name.removesuffix("/").split("/")
    if ".." in segments:
        raise _name_rule(f"entry name {shown!r} contains '..' (path traversal)")
    if any(s in ("", ".") for s in segments):
        raise _name_rule(f"entry name {shown!r} is not normal (an empty or '.' segment: readers differ)")


@lru_cache(maxsize=4096)  # a type's files carry the same names: folded once per process
def fold_name(name: str) -> str:
    """``name`` as Windows extraction sees it: NFC, case-folded, each segment without trailing dots and spaces
    and without an NTFS stream suffix (``a:b``, ``a::$DATA``)."""
    segments = []
    for segment in unicodedata.normalize("NFC", name).removesuffix("/").split("/"):
        segments.append(segment.split(":", 1)[0].rstrip(". ").casefold())
    return "/".join(segments)


def _check_folded(entries: list[ZipEntry]) -> None:
    names = tuple(entry.name for entry in entries)
    if len(names) <= _FOLDED_CACHED_ENTRIES:
        _check_folded_cached(names)  # a certificate's package: the same names file after file
    else:
        _check_folded_names(names)  # a large package is checked without keeping its names


def _check_folded_names(names: tuple[str, ...]) -> None:
    folded: dict[str, str] = {}
    for name in names:
        key = fold_name(name)
        if not all(key.split("/")):
            raise _name_rule(f"entry name {name!r} has a segment that Windows reads as empty")
        other = folded.get(key)
        if other is not None and not (other.endswith("/") and name.endswith("/") and other == name):
            if other == name:
                raise _name_rule(f"duplicate entry {name!r}")
            raise _name_rule(
                f"entries {other!r} and {name!r} are the same file where names fold (case, trailing "
                "dots or spaces, ':' streams): extraction keeps only one of them"
            )
        folded[key] = name
    for name in names:
        if name.endswith("/"):
            continue
        parts = fold_name(name).split("/")
        for end in range(1, len(parts)):
            other = folded.get("/".join(parts[:end]))
            if other is not None and not other.endswith("/"):
                raise _name_rule(f"{other!r} is a file, and {name!r} needs it to be a directory")


#: Name lists of up to this many entries have their verdict kept (pure, so exact); a refusal is not kept.
_FOLDED_CACHED_ENTRIES = 64
_check_folded_cached = lru_cache(maxsize=256)(_check_folded_names)


# --- the central directory and the local headers -----------------------------------------------------------


@dataclass(frozen=True)
class _Central:
    raw_name: bytes
    name: str
    version_needed: int
    flags: int
    method: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int
    naming_fields: dict[int, bytes]


def _central_directory(data: bytes, end: _End) -> list[_Central]:
    if end.directory_offset + end.directory_size != end.offset:
        gap = end.offset - end.directory_size - end.directory_offset
        if gap > 0:
            raise _archive_rule(
                f"the central directory is {gap} byte(s) away from where its end record places it (bytes before "
                "the archive, or between its parts)"
            )
        raise _archive_rule("the central directory overlaps its end record")
    records: list[_Central] = []
    position = end.directory_offset
    for index in range(end.entries):
        if position + _CENTRAL.size > end.offset or data[position : position + 4] != _CENTRAL_MAGIC:
            raise _archive_rule(
                f"central-directory record {index + 1} of {end.entries} is missing or damaged"
            )
        (
            _sig,
            made_by,
            version_needed,
            flags,
            method,
            _time,
            _date,
            crc,
            compressed_size,
            size,
            name_length,
            extra_length,
            comment_length,
            disk,
            _internal,
            external,
            header_offset,
        ) = _CENTRAL.unpack_from(data, position)
        start = position + _CENTRAL.size
        raw_name = data[start : start + name_length]
        extra = data[start + name_length : start + name_length + extra_length]
        raw_comment = data[
            start + name_length + extra_length : start + name_length + extra_length + comment_length
        ]
        position = start + name_length + extra_length + comment_length
        if position > end.offset:
            raise _archive_rule(f"central-directory record {index + 1} runs past the central directory")
        name = _decode_name(raw_name, flags, "entry name")
        where = f"entry {name!r}"
        _normal_name(name)
        fields = _extra_fields(extra, f"{where} (central directory)")
        _check_unicode_field(fields, _UNICODE_PATH, raw_name, name, where)
        if raw_comment or _UNICODE_COMMENT in fields:
            comment = _decode_name(raw_comment, flags, f"{where}: comment")
            _check_unicode_field(fields, _UNICODE_COMMENT, raw_comment, comment, where)
        if disk:
            raise _archive_rule(f"{where} starts on disk {disk} (a split archive)")
        if flags & 0x0001 or flags & 0x0040 or flags & 0x2000:
            raise OfdFormatError(f"ZIP entry {name!r} is encrypted")
        if flags & ~_ALLOWED_FLAGS:
            raise _archive_rule(f"{where} sets general-purpose flag bits 0x{flags & ~_ALLOWED_FLAGS:04x}")
        if (version_needed & 0xFF) > _MAX_VERSION_NEEDED:
            raise _archive_rule(
                f"{where} needs ZIP version {(version_needed & 0xFF) / 10:.1f} to be extracted (readers that "
                "stop at 4.6 skip it)"
            )
        if method not in (STORED, DEFLATED):
            raise OfdFormatError(
                f"ZIP entry {name!r} uses compression method {method}; only stored (0) and deflated (8) are "
                "accepted"
            )
        if method == STORED and flags & _DESCRIPTOR_FLAG:
            raise _archive_rule(
                f"{where} is stored with a data descriptor (a streaming reader cannot find its end)"
            )
        if made_by >> 8 in _UNIX_HOSTS and (external >> 16) & _UNIX_FILE_TYPE == _UNIX_SYMLINK:
            raise _archive_rule(f"{where} is a symbolic link")
        if name.endswith("/") and (size or compressed_size > (2 if method == DEFLATED else 0)):
            raise _name_rule(f"directory entry {name!r} holds data ({size} bytes)")
        naming = {k: v for k, v in fields.items() if k in (_UNICODE_PATH, _UNICODE_COMMENT)}
        records.append(
            _Central(
                raw_name,
                name,
                version_needed,
                flags,
                method,
                crc,
                compressed_size,
                size,
                header_offset,
                naming,
            )
        )
    if position != end.offset:
        raise _archive_rule(f"{end.offset - position} byte(s) in the central directory belong to no record")
    return records


def _local_entry(data: bytes, record: _Central, position: int) -> tuple[ZipEntry, int]:
    """The entry whose local header is at ``position``, checked against its central record; and where the next
    local header must start."""
    where = f"entry {record.name!r}"
    if position + _LOCAL.size > len(data) or data[position : position + 4] != _LOCAL_MAGIC:
        raise _archive_rule(f"{where}: no local header at offset {position}")
    _sig, _version, flags, method, _time, _date, crc, compressed_size, size, name_length, extra_length = (
        _LOCAL.unpack_from(data, position)
    )
    start = position + _LOCAL.size
    raw_name = data[start : start + name_length]
    extra = data[start + name_length : start + name_length + extra_length]
    if raw_name != record.raw_name:
        raise _archive_rule(f"{where}: its local header names {raw_name!r}")
    if flags != record.flags or method != record.method:
        raise _archive_rule(
            f"{where}: its local header says flags 0x{flags:04x}, method {method}; the central directory says "
            f"flags 0x{record.flags:04x}, method {record.method}"
        )
    fields = _extra_fields(extra, f"{where} (local header)")
    _check_unicode_field(fields, _UNICODE_PATH, raw_name, record.name, f"{where} (local header)")
    naming = {k: v for k, v in fields.items() if k in (_UNICODE_PATH, _UNICODE_COMMENT)}
    if naming.get(_UNICODE_PATH) != record.naming_fields.get(_UNICODE_PATH):
        raise _archive_rule(
            f"{where}: its local header and the central directory carry different Unicode Paths"
        )
    declared = (record.crc, record.compressed_size, record.size)
    local = (crc, compressed_size, size)
    described = flags & _DESCRIPTOR_FLAG
    if local != declared and not (
        described and all(v in (0, d) for v, d in zip(local, declared, strict=True))
    ):
        raise _archive_rule(
            f"{where}: its local header says CRC-32 {crc:08x}, {compressed_size} → {size} bytes; the central "
            f"directory says CRC-32 {record.crc:08x}, {record.compressed_size} → {record.size} bytes"
        )
    data_offset = start + name_length + extra_length
    following = data_offset + record.compressed_size
    if described:  # with or without its signature (a CRC-32 can equal the signature: try both readings)
        for skip in (4, 0) if data[following : following + 4] == _DESCRIPTOR_MAGIC else (0,):
            descriptor = data[following + skip : following + skip + _DESCRIPTOR.size]
            if len(descriptor) == _DESCRIPTOR.size and _DESCRIPTOR.unpack(descriptor) == declared:
                following += skip + _DESCRIPTOR.size
                break
        else:
            raise _archive_rule(f"{where}: its data descriptor does not say what the central directory says")
    entry = ZipEntry(
        record.name, method, flags, record.crc, record.compressed_size, record.size, position, data_offset
    )
    return entry, following


def _foreign_signatures(data: bytes) -> None:
    for signature, first, last, meaning in _FOREIGN_SIGNATURES:
        start = first if first >= 0 else max(0, len(data) + first)
        end = len(data) if last is None else last
        found = data.find(signature, start, end)
        if found >= 0:
            raise _archive_rule(f"{signature.decode()!r} at byte {found}: {meaning} — a polyglot file")


def _pdf_in_headers(data: bytes, entries: list[ZipEntry], end: _End) -> None:
    """No PDF header in the bytes the archive's own structures hold — local headers (names, extra fields), the
    central directory (extra fields, entry comments), the archive comment: lenient PDF readers (poppler) find a
    PDF anywhere in a file and rebuild its cross-reference table."""
    regions = [(entry.header_offset, entry.data_offset) for entry in entries]
    regions.append((end.directory_offset, len(data)))
    for start, stop in regions:
        found = data.find(b"%PDF-", start, stop)
        if found >= 0:
            raise _archive_rule(
                f"'%PDF-' at byte {found}, in a header, extra field or comment of the archive (PDF readers find a "
                "PDF anywhere in a file) — a polyglot file"
            )


def read_container(data: bytes, limits: Limits) -> tuple[ZipEntry, ...]:
    """The entries of the one canonical ZIP archive ``data`` is, in the order of their local headers, their
    declared sizes within ``limits``; :class:`~.limits.NonCanonicalPackageError`, :class:`~.limits.NotOfdError`
    (not a ZIP archive) or :class:`~.limits.OfdFormatError` (a limit, encryption, a compression method) when
    refused."""
    if not data.startswith(_LOCAL_MAGIC):
        if data.startswith(_END_MAGIC) or _END_MAGIC not in data[-_END.size - 0xFFFF :]:
            raise NotOfdError("not a ZIP archive (no end-of-central-directory record)")
        first = data.find(_LOCAL_MAGIC)
        raise _archive_rule(
            f"{first if first >= 0 else len(data)} byte(s) before the first local header (a prefix: streaming "
            "readers read it, or skip to another archive)"
        )
    end = _end_record(data, limits)
    records = _central_directory(data, end)
    _foreign_signatures(data)
    entries: list[ZipEntry] = []
    position = 0
    for record in sorted(records, key=lambda r: r.header_offset):
        if record.header_offset != position:
            if record.header_offset < position:
                raise _archive_rule(f"entry {record.name!r} overlaps the entry before it")
            raise _archive_rule(
                f"{record.header_offset - position} byte(s) at offset {position} belong to no entry of the "
                "central directory (a local entry it does not list, or hidden data)"
            )
        entry, position = _local_entry(data, record, position)
        entries.append(entry)
    if position != end.directory_offset:
        raise _archive_rule(
            f"{end.directory_offset - position} byte(s) at offset {position} belong to no entry of the central "
            "directory (a local entry it does not list, or hidden data)"
            if position < end.directory_offset
            else "the last entry runs into the central directory"
        )
    _pdf_in_headers(data, entries, end)
    _check_folded(entries)
    _check_sizes(entries, limits)
    return tuple(entries)


def _check_sizes(entries: list[ZipEntry], limits: Limits) -> None:
    """The declared sizes against the per-entry, ratio and total limits, before anything is decompressed."""
    total = 0
    for entry in entries:
        if entry.is_directory:
            continue
        if entry.size > limits.max_entry_size:
            raise OfdFormatError(
                f"ZIP entry {entry.name!r} declares {entry.size} bytes, over the per-entry limit of "
                f"{limits.max_entry_size}"
            )
        if entry.size > limits.ratio_grace and entry.size > max(entry.compressed_size, 1) * limits.max_ratio:
            raise OfdFormatError(
                f"ZIP entry {entry.name!r} declares a compression ratio of "
                f"{entry.size // max(entry.compressed_size, 1)}:1 ({entry.compressed_size} → {entry.size} bytes), "
                f"over the limit of {limits.max_ratio}:1 (zip bomb)"
            )
        total += entry.size
        if total > limits.max_total_size:
            raise OfdFormatError(
                f"ZIP entries declare more than {limits.max_total_size} bytes in total (at {entry.name!r}): over "
                "the total limit (zip bomb)"
            )


def inflate(data: bytes, entry: ZipEntry) -> bytes:
    """The bytes of one file entry: never more than its declared size + 1 decompressed, and refused unless they
    are exactly the declared size with the declared CRC-32. The declared sizes were checked against the limits
    before (:func:`read_container`), so capping the output at the declared size keeps every limit even when the
    declaration lies."""
    start = entry.data_offset
    stop = start + entry.compressed_size
    try:
        if entry.method == STORED:
            out = data[start:stop]
        else:
            inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            out = inflater.decompress(memoryview(data)[start:stop], entry.size + 1)
            if len(out) <= entry.size and not inflater.eof:
                raise OfdFormatError(
                    f"ZIP entry {entry.name!r} cannot be read: its deflate stream is cut short"
                )
            if inflater.unused_data and len(out) <= entry.size:
                raise _archive_rule(f"entry {entry.name!r}: bytes after the end of its deflate stream")
    except zlib.error as exc:
        raise OfdFormatError(f"ZIP entry {entry.name!r} cannot be read: {exc}") from None
    if len(out) > entry.size:
        raise OfdFormatError(f"ZIP entry {entry.name!r} inflates beyond its declared {entry.size} bytes")
    if len(out) != entry.size:
        raise OfdFormatError(
            f"ZIP entry {entry.name!r} declares {entry.size} bytes but holds {len(out)}: sizes do not match"
        )
    if zlib.crc32(out) != entry.crc:
        raise OfdFormatError(f"ZIP entry {entry.name!r} cannot be read: Bad CRC-32 for file {entry.name!r}")
    return out
