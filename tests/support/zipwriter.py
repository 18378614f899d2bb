"""A ZIP writer for tests that need archives no library writes: every field of every header is the test's choice.

The canonical-package tests (issue 16) build shadow and polyglot files from an issued certificate. A library
writer cannot produce most of them (a local entry missing from the central directory, a Unicode Path field that
disagrees with the raw name, a header that disagrees with its central record), and using one would test that
library's habits rather than ours. :func:`write_zip` lays out ``Member``s exactly as described; :func:`members_of`
turns an existing archive back into members (through :mod:`zipfile`, only for well-formed input) so that a test
can start from a real certificate and change one thing.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

__all__ = ["Member", "extra_field", "members_of", "replaced", "unicode_path_field", "write_zip"]

_LOCAL = struct.Struct("<4s5H3I2H")
_CENTRAL = struct.Struct("<4s6H3I5H2I")
_END = struct.Struct("<4s4H2IH")
_DOS_TIME, _DOS_DATE = 0, (2026 - 1980) << 9 | 1 << 5 | 1


@dataclass(frozen=True)
class Member:
    """One entry. ``raw_name`` and ``payload`` are written as given; everything else defaults to what a plain
    writer would put there and can be overridden, per header, to make the two disagree."""

    raw_name: bytes
    data: bytes = b""
    method: int = zipfile.ZIP_DEFLATED
    flags: int = 0x0800
    #: Extra fields of the local header and of the central record (already encoded: see :func:`extra_field`).
    local_extra: bytes = b""
    central_extra: bytes = b""
    comment: bytes = b""
    #: Write a data descriptor (flag bit 3 is set for you; sizes and CRC in the local header are zero).
    descriptor: bool = False
    descriptor_signature: bool = True
    #: In the central directory at all (False: a local entry only streaming readers see).
    listed: bool = True
    #: Overrides of the central record's fields (``crc``, ``compressed_size``, ``size``, ``flags``, ``method``,
    #: ``version_needed``, ``external``, ``made_by``, ``raw_name``) and of the local header's (same names).
    central: dict[str, object] = field(default_factory=dict)
    local: dict[str, object] = field(default_factory=dict)
    #: Bytes written right after this entry's data (or descriptor): hidden data between entries.
    after: bytes = b""

    @classmethod
    def of(cls, name: str, data: bytes = b"", **changes: object) -> Member:
        return cls(name.encode("utf-8"), data, **changes)  # type: ignore[arg-type]

    def compressed(self) -> bytes:
        if self.method == zipfile.ZIP_DEFLATED:
            packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
            return packer.compress(self.data) + packer.flush()
        return self.data


def extra_field(header_id: int, body: bytes) -> bytes:
    """One extra-field record: header ID, length, body."""
    return struct.pack("<2H", header_id, len(body)) + body


def unicode_path_field(raw_name: bytes, unicode_name: str) -> bytes:
    """An Info-ZIP Unicode Path extra field (0x7075) for an entry whose raw name is ``raw_name``."""
    return extra_field(
        0x7075, b"\x01" + struct.pack("<I", zlib.crc32(raw_name)) + unicode_name.encode("utf-8")
    )


def write_zip(
    members: Sequence[Member],
    *,
    prefix: bytes = b"",
    suffix: bytes = b"",
    comment: bytes = b"",
    central_order: Sequence[int] | None = None,
    offsets_from_prefix: bool = False,
) -> bytes:
    """The archive of ``members`` in order. ``prefix`` goes before the first local header (offsets stay relative
    to the archive unless ``offsets_from_prefix``, like a file glued behind another); ``suffix`` after the end
    record; ``comment`` is the archive comment; ``central_order`` lists the central records in another order."""
    out = io.BytesIO()
    out.write(prefix)
    base = 0 if offsets_from_prefix else len(prefix)
    records: list[bytes] = []
    for member in members:
        body = member.compressed()
        crc, size = zlib.crc32(member.data), len(member.data)
        flags = member.flags | (0x0008 if member.descriptor else 0)
        version = 20 if member.method == zipfile.ZIP_DEFLATED or member.raw_name.endswith(b"/") else 10
        local = {
            "version_needed": version,
            "flags": flags,
            "method": member.method,
            "crc": crc,
            "compressed_size": len(body),
            "size": size,
            "raw_name": member.raw_name,
        }
        if member.descriptor:
            local.update(crc=0, compressed_size=0, size=0)
        local.update(member.local)
        offset = out.tell() - base
        local_name = local["raw_name"]
        assert isinstance(local_name, bytes)
        out.write(
            _LOCAL.pack(
                b"PK\x03\x04",
                local["version_needed"],
                local["flags"],
                local["method"],
                _DOS_TIME,
                _DOS_DATE,
                local["crc"],
                local["compressed_size"],
                local["size"],
                len(local_name),
                len(member.local_extra),
            )
        )
        out.write(local_name + member.local_extra + body)
        if member.descriptor:
            out.write(
                (b"PK\x07\x08" if member.descriptor_signature else b"")
                + struct.pack("<3I", crc, len(body), size)
            )
        out.write(member.after)
        central = {
            "made_by": 0x0314,
            "version_needed": version,
            "flags": flags,
            "method": member.method,
            "crc": crc,
            "compressed_size": len(body),
            "size": size,
            "external": 0o100644 << 16,
            "raw_name": member.raw_name,
        }
        central.update(member.central)
        if member.listed:
            name = central["raw_name"]
            assert isinstance(name, bytes)
            records.append(
                _CENTRAL.pack(
                    b"PK\x01\x02",
                    central["made_by"],
                    central["version_needed"],
                    central["flags"],
                    central["method"],
                    _DOS_TIME,
                    _DOS_DATE,
                    central["crc"],
                    central["compressed_size"],
                    central["size"],
                    len(name),
                    len(member.central_extra),
                    len(member.comment),
                    0,
                    0,
                    central["external"],
                    offset,
                )
                + name
                + member.central_extra
                + member.comment
            )
    directory_offset = out.tell() - base
    for index in central_order if central_order is not None else range(len(records)):
        out.write(records[index])
    directory_size = out.tell() - base - directory_offset
    out.write(
        _END.pack(
            b"PK\x05\x06", 0, 0, len(records), len(records), directory_size, directory_offset, len(comment)
        )
    )
    out.write(comment + suffix)
    return out.getvalue()


def members_of(archive: bytes) -> list[Member]:
    """The entries of a well-formed archive as ``Member``s (same order, names, methods and data)."""
    with zipfile.ZipFile(io.BytesIO(archive)) as source:
        return [
            Member(info.orig_filename.encode("utf-8"), source.read(info), method=info.compress_type)
            for info in source.infolist()
        ]


def replaced(members: Iterable[Member], name: str, **changes: object) -> list[Member]:
    """``members`` with the one named ``name`` changed (``data=…``, ``local_extra=…`` …)."""
    out = []
    for member in members:
        out.append(replace(member, **changes) if member.raw_name == name.encode("utf-8") else member)  # type: ignore[arg-type]
    return out
