"""The OFD package ZIP writer (:mod:`certstore.packaging.ofd.archive`): with zlib's DEFLATE, byte for byte what
:mod:`zipfile` writes; with ISA-L's, what every reader inflates back; the cache of recurring parts never serves
bytes other than the ones presented."""

from __future__ import annotations

import io
import os
import zipfile
import zlib

import pytest

from certstore.packaging.ofd import archive
from certstore.packaging.ofd.archive import ZIP_TIMESTAMP, ArchiveError, zip_entries
from certstore.packaging.ofd.writer import OfdBuildError, write_package


def zipfile_bytes(entries: list[tuple[str, bytes, bool]]) -> bytes:
    """The reference: the stdlib writer as the OFD writer used it before (writestr into a BytesIO)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as package:
        for name, data, deflate in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            package.writestr(info, data, compress_type=info.compress_type, compresslevel=1)
    return out.getvalue()


ENTRIES = [
    ("OFD.xml", b'<?xml version="1.0" encoding="UTF-8"?><ofd:OFD/>', True),
    ("Doc_0/Res/image_3.png", os.urandom(70_000), False),
    ("Doc_0/Res/font_2.ttf", bytes(range(256)) * 200, True),
    ("Doc_0/附件/说明.xml", "中文内容".encode() * 50, True),
    ("empty.xml", b"", True),
    ("empty.dat", b"", False),
]


@pytest.fixture
def zlib_deflate(monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer with zlib's level 1 in place of ISA-L's, as zipfile deflates."""

    def deflate(data: bytes) -> bytes:
        compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
        return compressor.compress(data) + compressor.flush()

    monkeypatch.setattr(archive, "_deflate", deflate)
    monkeypatch.setattr(archive, "_cache", archive.OrderedDict())


@pytest.mark.parametrize("count", [0, 1, len(ENTRIES)])
def test_same_bytes_as_zipfile(zlib_deflate: None, count: int) -> None:
    entries = ENTRIES[:count]
    assert zip_entries(entries) == zipfile_bytes(entries)


def test_isal_deflate_is_read_back_by_zipfile_and_zlib() -> None:
    package = zip_entries(ENTRIES)
    with zipfile.ZipFile(io.BytesIO(package)) as archive_file:
        assert archive_file.testzip() is None
        assert [(i.filename, archive_file.read(i)) for i in archive_file.infolist()] == [
            (name, data) for name, data, _ in ENTRIES
        ]
        font = archive_file.getinfo("Doc_0/Res/font_2.ttf")
        assert font.compress_type == zipfile.ZIP_DEFLATED and font.compress_size < font.file_size / 10
    raw = archive._deflate(ENTRIES[2][1])
    assert zlib.decompress(raw, -15) == ENTRIES[2][1]


def test_recurring_parts_come_from_the_cache_and_stay_exact(zlib_deflate: None) -> None:
    font = os.urandom(8_000) + bytes(30_000)
    first = zip_entries([("a.ttf", font, True)])
    assert (id(font), 8) in archive._cache
    assert zip_entries([("a.ttf", font, True)]) == first == zipfile_bytes([("a.ttf", font, True)])
    # equal bytes in another object, and other bytes of the same size: computed, never served from the entry
    twin = bytes(bytearray(font))
    other = bytes(38_000)
    assert zip_entries([("a.ttf", twin, True)]) == first
    assert zip_entries([("a.ttf", other, True)]) == zipfile_bytes([("a.ttf", other, True)])
    with zipfile.ZipFile(io.BytesIO(zip_entries([("a.ttf", font, True), ("b", other, False)]))) as package:
        assert package.testzip() is None
        assert package.read("a.ttf") == font and package.read("b") == other


def test_small_parts_are_not_cached() -> None:
    small = os.urandom(100)
    zip_entries([("s.xml", small, True)])
    assert (id(small), 8) not in archive._cache


def test_the_cache_is_bounded() -> None:
    parts = [os.urandom(5_000) for _ in range(archive._CACHE_ENTRIES + 5)]
    for part in parts:
        zip_entries([("p.dat", part, False)])
    assert len(archive._cache) <= archive._CACHE_ENTRIES


def test_too_many_entries_are_refused() -> None:
    with pytest.raises(ArchiveError, match="at most 65535"):
        zip_entries((f"{i}.xml", b"", True) for i in range(0x10000))


def test_write_package_refuses_duplicates_and_stores_images() -> None:
    with pytest.raises(OfdBuildError, match="written twice"):
        write_package([("a.xml", b"1"), ("a.xml", b"2")])
    package = zipfile.ZipFile(io.BytesIO(write_package([("x.PNG", b"img"), ("y.xml", b"<y/>")])))
    assert [i.compress_type for i in package.infolist()] == [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]
