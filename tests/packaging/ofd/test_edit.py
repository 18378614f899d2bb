"""``certstore.packaging.ofd.edit``: the OFD work a copy (副本) needs — CustomData appended to an unsigned package,
the seal pictures a sealed package shows on a page, a free place for one more stamp, and which files of a package
built again differ from the original."""

from __future__ import annotations

import io

import pytest
from lxml import etree
from PIL import Image

from certstore.packaging.layout import Box, FaceLayout
from certstore.packaging.ofd import build_ofd
from certstore.packaging.ofd import names as n
from certstore.packaging.ofd.edit import (
    OfdEditError,
    PageStamp,
    add_custom_datas,
    differing_files,
    in_custom_data_order,
    place_stamp,
    seal_stamps,
    stamp_image,
)
from certstore.packaging.ofd.reader import OfdReader
from certstore.packaging.ofd.writer import read_package, write_package
from certstore.records import PreparedVersion
from certstore.seal import SealPicture, parse_seal
from tests.packaging.ofd.conftest import REPOSITORY_STAMP
from tests.packaging.ofd.structure import check_package

Face = tuple[PreparedVersion, FaceLayout]


def test_custom_datas_are_appended_and_nothing_else_changes(unsigned_ofd: bytes) -> None:
    edited = add_custom_datas(unsigned_ofd, {"FB_YT": "办理登记", "FB_SQR": "窗口 王五"})
    assert check_package(edited) == []
    before, after = read_package(unsigned_ofd), read_package(edited)
    assert {p for p in after if after[p] != before.get(p)} == {n.OFD_XML}
    custom = OfdReader.open(edited).doc_info.custom_datas
    assert list(custom)[-2:] == ["FB_YT", "FB_SQR"] and custom["FB_YT"] == "办理登记"
    assert {k: v for k, v in custom.items() if not k.startswith("FB_")} == dict(
        OfdReader.open(unsigned_ofd).doc_info.custom_datas
    )


def test_custom_datas_need_a_doc_info(unsigned_ofd: bytes) -> None:
    files = read_package(unsigned_ofd)
    root = etree.fromstring(files[n.OFD_XML])
    body = root.find(n.q(n.DOC_BODY))
    assert body is not None
    body.remove(body.find(n.q(n.DOC_INFO)))
    files[n.OFD_XML] = etree.tostring(root)
    with pytest.raises(OfdEditError, match="no DocInfo"):
        add_custom_datas(write_package(files.items()), {"FB_YT": "x"})


def test_custom_data_order_follows_the_package(unsigned_ofd: bytes) -> None:
    package = OfdReader.open(unsigned_ofd)
    names = list(package.doc_info.custom_datas)
    shuffled = {"ZZ_EXTRA": 1, **{name: package.doc_info.custom_datas[name] for name in reversed(names)}}
    assert list(in_custom_data_order(shuffled, package)) == [*names, "ZZ_EXTRA"]
    assert in_custom_data_order({"ZZ_EXTRA": 1}, package) == {"ZZ_EXTRA": "1"}


def _rounded(box: Box | None) -> tuple[float, ...]:
    assert box is not None
    return tuple(round(v, 3) for v in (box.x, box.y, box.w, box.h))


def test_seal_stamps_of_page_one(
    issuer_sealed: bytes, doubly_sealed: bytes, agency_seal: bytes, repository_seal: bytes, main_face: Face
) -> None:
    _, layout = main_face
    (issuer,) = seal_stamps(OfdReader.open(issuer_sealed))
    assert _rounded(issuer.box) == _rounded(layout.seal_box)  # the Boundary is written to 3 decimals
    assert issuer.picture == parse_seal(agency_seal).picture
    first, second = seal_stamps(OfdReader.open(doubly_sealed), page=0)
    assert (_rounded(first.box), second.box) == (_rounded(layout.seal_box), REPOSITORY_STAMP)
    assert second.picture == parse_seal(repository_seal).picture
    assert seal_stamps(OfdReader.open(doubly_sealed), page=1) == []  # a one-page face


def test_an_unsealed_package_shows_no_stamps(unsigned_ofd: bytes) -> None:
    assert seal_stamps(OfdReader.open(unsigned_ofd)) == []


def test_a_stamp_is_drawn_as_an_ordinary_image(issuer_sealed: bytes) -> None:
    (stamp,) = seal_stamps(OfdReader.open(issuer_sealed))
    item = stamp_image(stamp, "issuer_seal_picture")
    assert (item.role, item.box, item.data) == ("issuer_seal_picture", stamp.box, stamp.picture.data)
    assert item.media_type in n.IMAGE_FORMATS
    odd = PageStamp(stamp.box, SealPicture("OFD", b"not an image", 40, 40))
    with pytest.raises(OfdEditError, match="cannot show as an image"):
        stamp_image(odd, "x")


def test_place_stamp_left_of_then_above_then_the_corner() -> None:
    page = Box(0.0, 0.0, 210.0, 297.0)
    seal = Box(140.0, 220.0, 40.0, 40.0)
    assert place_stamp(page, [seal], 30.0, 30.0) == Box(107.0, 230.0, 30.0, 30.0)  # left, bottoms aligned
    wide = Box(20.0, 220.0, 160.0, 40.0)  # no room on its left: above it
    assert place_stamp(page, [wide], 30.0, 30.0) == Box(150.0, 187.0, 30.0, 30.0)
    assert place_stamp(page, [], 30.0, 30.0) == Box(172.0, 259.0, 30.0, 30.0)  # the bottom-right corner
    with pytest.raises(OfdEditError, match="no room"):
        place_stamp(Box(0.0, 0.0, 40.0, 40.0), [], 30.0, 30.0)


def _recoded(png: bytes) -> bytes:
    """The same pixels, encoded again with other settings."""
    out = io.BytesIO()
    with Image.open(io.BytesIO(png)) as image:
        image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def test_differing_files_ignores_ofd_xml_fonts_and_re_encoded_images(
    unsigned_ofd: bytes, main_face: Face
) -> None:
    prepared, layout = main_face
    assert differing_files(unsigned_ofd, build_ofd(layout, metadata=prepared.metadata)) == []
    files = read_package(unsigned_ofd)
    image = next(p for p in files if p.lower().endswith(".png"))
    page = next(p for p in files if p.endswith("Content.xml"))
    assert _recoded(files[image]) != files[image]
    changed = {
        **files,
        image: _recoded(files[image]),
        n.OFD_XML: files[n.OFD_XML] + b" ",
        page: files[page].replace(b"</ofd:Page>", b"<!-- changed --></ofd:Page>"),
    }
    assert differing_files(unsigned_ofd, write_package(changed.items())) == [page]
