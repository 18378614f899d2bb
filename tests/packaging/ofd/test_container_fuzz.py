"""Malformed ZIP structure ends as a refusal, never as an internal error (issue 16, item 5).

A small signed package (the ofdrw fixture laid out with every accepted variant at once: data descriptors with
and without their signature, Unicode Path fields, entry comments, a reordered central directory, an archive
comment) is damaged in every byte of its ZIP structure — each local header with its name and extra field, each
data descriptor, the whole central directory, the end record — with three bit patterns each, and cut short or
lengthened at every structural boundary. :meth:`OfdReader.open` must raise :class:`OfdFormatError` (or a
subclass) and nothing else, or read exactly the original files (a flip in a field no reader uses, such as a
timestamp or "version made by"); ``verify_file`` must say INVALID or raise ``UnreadableFileError``, or — only
when the files read are the original's — give the original verdict.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from functools import cache

import pytest

from certstore.checks import Indication
from certstore.packaging.ofd.container import read_container
from certstore.packaging.ofd.limits import DEFAULT_LIMITS
from certstore.packaging.ofd.reader import OfdFormatError, OfdReader
from certstore.verify import UnreadableFileError, verify_file
from tests.seal.seal_builders import ofdrw_trust
from tests.support.zipvariants import ACCEPTED

MASKS = (0x01, 0x80, 0xFF)
#: Every n-th damaged file also goes through ``verify_file`` (the reader alone is checked on all of them).
VERIFY_EVERY = 9
_END = struct.Struct("<4s4H2IH")


@cache
def original() -> bytes:
    return ACCEPTED["all-variants-at-once"]()


@cache
def original_files() -> dict[str, bytes]:
    return dict(OfdReader.open(original()).files)


def regions(data: bytes) -> dict[str, range]:
    """The structural byte ranges of ``data`` (a well-formed archive), named for the failure messages."""
    entries = read_container(data, DEFAULT_LIMITS)
    directory_size, directory_offset = _END.unpack_from(data, data.rindex(b"PK\x05\x06"))[5:7]
    end = directory_offset + directory_size
    out: dict[str, range] = {}
    following = [e.header_offset for e in entries[1:]] + [directory_offset]
    for entry, next_header in zip(entries, following, strict=True):
        out[f"local header of {entry.name}"] = range(entry.header_offset, entry.data_offset)
        descriptor = range(entry.data_offset + entry.compressed_size, next_header)
        if descriptor:
            out[f"data descriptor of {entry.name}"] = descriptor
    out["central directory"] = range(directory_offset, end)
    out["end record and archive comment"] = range(end, len(data))
    return out


def boundaries(data: bytes) -> list[int]:
    """Every offset where a structure starts or ends (headers, data, descriptors, central records, end record)."""
    entries = read_container(data, DEFAULT_LIMITS)
    points = {0, len(data)}
    for entry in entries:
        points |= {entry.header_offset, entry.header_offset + 30, entry.data_offset}
        points.add(entry.data_offset + entry.compressed_size)
    position = data.rindex(b"PK\x05\x06")
    directory_size, directory_offset = _END.unpack_from(data, position)[5:7]
    cursor = directory_offset
    while cursor < directory_offset + directory_size:
        points |= {cursor, cursor + 46}
        cursor += 46 + sum(struct.unpack_from("<3H", data, cursor + 28))
    points |= {cursor, position + _END.size}
    return sorted(points)


def flipped() -> Iterator[tuple[str, bytes]]:
    data = original()
    for region, span in regions(data).items():
        for position in span:
            for mask in MASKS:
                damaged = bytearray(data)
                damaged[position] ^= mask
                yield f"{region}: byte {position} ^ 0x{mask:02x}", bytes(damaged)


def _repointed(data: bytes, directory_offset: int) -> bytes:
    """``data`` with its end record's central-directory offset set to ``directory_offset``."""
    position = data.rindex(b"PK\x05\x06")
    patched = bytearray(data)
    struct.pack_into("<I", patched, position + 16, directory_offset)
    return bytes(patched)


def cut_and_lengthened() -> Iterator[tuple[str, bytes]]:
    """Cut short and lengthened at (and next to) every boundary; and, so that more than the end record's
    offsets is tested, the local part cut or lengthened with the end record pointing at the moved central
    directory (only the local headers' agreement with it can then tell)."""
    data = original()
    directory_offset = _END.unpack_from(data, data.rindex(b"PK\x05\x06"))[6]
    for point in boundaries(data):
        for at in (point - 1, point, point + 1):
            if 0 < at < len(data):
                yield f"cut at {at}", data[:at]
                if at < directory_offset:
                    yield f"local part cut at {at}", _repointed(data[:at] + data[directory_offset:], at)
        for inserted in (b"\0", b"PK\x03\x04", b"PK\x05\x06" + bytes(18), b"PK\x07\x08" + bytes(12)):
            lengthened = data[:point] + inserted + data[point:]
            yield f"{inserted!r} inserted at {point}", lengthened
            if point <= directory_offset:
                moved = _repointed(lengthened, directory_offset + len(inserted))
                yield f"{inserted!r} inserted at {point}, central directory re-pointed", moved


def _reading(label: str, damaged: bytes) -> tuple[str | None, bool]:
    """(a failure description or None, whether the reader accepted the damaged file)."""
    try:
        package = OfdReader.open(damaged)
    except OfdFormatError:
        return None, False
    except Exception as exc:
        return f"{label}: {type(exc).__name__}: {exc}", False
    if dict(package.files) != original_files():
        return f"{label}: accepted with other content", True
    return None, True


def _verdict(label: str, damaged: bytes, accepted: bool) -> str | None:
    try:
        report = verify_file(damaged, trust=ofdrw_trust())
    except UnreadableFileError:
        return None if not accepted else f"{label}: unreadable although the reader accepted it"
    except Exception as exc:
        return f"{label}: verify_file raised {type(exc).__name__}: {exc}"
    expected = {Indication.VALID} if accepted else {Indication.INVALID}
    if report.indication not in expected:
        return f"{label}: {report.indication.name}: {report.problems[:2]}"
    return None


def test_the_fuzzed_package_is_valid() -> None:
    """The starting point verifies VALID (so a damaged copy that stays VALID is worth noticing)."""
    report = verify_file(original(), trust=ofdrw_trust())
    assert report.indication is Indication.VALID, report.problems
    assert len(original_files()) == 8


@pytest.mark.parametrize(
    "damage", [flipped, cut_and_lengthened], ids=["bit-flips-in-every-structure-byte", "cut-and-lengthened"]
)
def test_damaged_structure_is_refused_or_harmless(damage) -> None:
    """Each damaged file is refused by the reader with an OfdFormatError (nothing else escapes), or read as
    exactly the original files; every ``VERIFY_EVERY``-th also through ``verify_file``: INVALID or unreadable
    when refused, the original verdict only when the files read are the original's."""
    start = time.perf_counter()
    failures: list[str] = []
    count = accepted_count = 0
    for label, damaged in damage():
        count += 1
        failure, accepted = _reading(label, damaged)
        accepted_count += accepted
        if failure is None and count % VERIFY_EVERY == 0:
            failure = _verdict(label, damaged, accepted)
        if failure is not None:
            failures.append(failure)
    elapsed = time.perf_counter() - start
    assert not failures, f"{len(failures)} of {count} damaged files:\n" + "\n".join(failures[:20])
    if damage is cut_and_lengthened:
        assert accepted_count == 0  # a cut or an insertion always leaves bytes unaccounted for
    assert count > 1_000 if damage is flipped else count > 200
    assert elapsed < 15, f"{count} damaged files took {elapsed:.1f} s"


def test_unprotected_fields_only_may_be_flipped_harmlessly() -> None:
    """The flips the reader accepts lie only in fields no reader uses to find or decode an entry: the local and
    central times and dates, "version made by", "version needed" (within 4.5), the internal and external
    attributes, comment text and the archive comment — never a name, a size, a CRC, an offset or a flag."""
    data = original()
    harmless_offsets_local = {4, 5, 10, 11, 12, 13}  # version needed, time, date
    harmless_offsets_central = {
        4,
        5,
        6,
        7,
        12,
        13,
        14,
        15,
        36,
        37,
        38,
        39,
        40,
        41,
    }  # made by, needed, time, date, attrs
    accepted_places: set[str] = set()
    spans = regions(data)
    for region, span in spans.items():
        for position in span:
            for mask in MASKS:
                damaged = bytearray(data)
                damaged[position] ^= mask
                _failure, accepted = _reading(region, bytes(damaged))
                if not accepted:
                    continue
                relative = position - span.start
                if region.startswith("local header"):
                    assert relative in harmless_offsets_local, (region, relative, mask)
                elif region == "central directory":
                    record = _record_start(data, span.start, position)
                    field = position - record
                    name_length, extra_length = struct.unpack_from("<2H", data, record + 28)
                    in_comment = field >= 46 + name_length + extra_length
                    assert field in harmless_offsets_central or in_comment, (region, field, mask)
                else:
                    assert region == "end record and archive comment" and relative >= _END.size, (
                        region,
                        relative,
                    )
                accepted_places.add(region.split(" of ")[0])
    assert accepted_places >= {"local header", "central directory", "end record and archive comment"}


def _record_start(data: bytes, directory_offset: int, position: int) -> int:
    cursor = directory_offset
    while True:
        length = 46 + sum(struct.unpack_from("<3H", data, cursor + 28))
        if position < cursor + length:
            return cursor
        cursor += length
