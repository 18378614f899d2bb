"""The unsigned OFD package: structure, text placement, embedded font, metadata, tags, determinism, refusals,
and rendering by an independent OFD reader."""

from __future__ import annotations

import dataclasses
import io
import json
import uuid
import zipfile
from datetime import date
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont
from lxml import etree
from PIL import Image

from certstore.packaging.layout import Align, Box, FaceLayout, ImageItem, TextItem
from certstore.packaging.ofd import Attachment, OfdBuildError, build_ofd
from certstore.packaging.ofd.names import ROLE_METADATA, XML_DECLARATION
from certstore.packaging.ofd.writer import _tag_xml
from certstore.records import PreparedVersion
from tests.packaging.ofd.conftest import MAIN_CODE
from tests.packaging.ofd.structure import OFD_NS, Package, check_element, check_package
from tests.support.ofd import easyofd_render

NS = {"ofd": OFD_NS}
TAG_NS = {"t": "urn:certstore:ofd:certificate-tags:1"}
META_NS = {"m": "urn:certstore:ofd:certificate-metadata:1"}
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "third-party" / "ofd"
Faces = dict[str, tuple[PreparedVersion, FaceLayout]]


def _text_objects(pkg: Package) -> dict[int, etree._Element]:
    content = pkg.xml("Doc_0/Pages/Page_0/Content.xml")
    return {int(t.get("ID")): t for t in content.iter(f"{{{OFD_NS}}}TextObject")}


def _tagged(pkg: Package) -> dict[str, list[int]]:
    tags = pkg.xml("Doc_0/Tags/Tag_Certificate.xml")
    return {
        field.get("Name"): [int(ref.text) for ref in field.findall("t:ObjectRef", TAG_NS)]
        for field in tags.findall("t:Field", TAG_NS)
    }


def _floats(text: str | None) -> list[float]:
    return [float(v) for v in (text or "").split()]


# --- every shipped catalogue type ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def packages(faces: Faces) -> dict[str, bytes]:
    return {code: build_ofd(layout, metadata=prepared.metadata) for code, (prepared, layout) in faces.items()}


def test_all_shipped_types_are_covered(faces: Faces) -> None:
    assert len(faces) >= 6 and MAIN_CODE in faces


def test_structure_of_every_type(faces: Faces, packages: dict[str, bytes]) -> None:
    for code, data in packages.items():
        assert check_package(data) == [], code
        pkg = Package.load(data)
        assert next(iter(pkg.files)) == "OFD.xml"
        assert "Doc_0/Signs/Signatures.xml" not in pkg.files  # signatures come later


def test_every_text_line_is_a_text_object_with_its_text(faces: Faces, packages: dict[str, bytes]) -> None:
    for code, (prepared, layout) in faces.items():
        pkg = Package.load(packages[code])
        objects = _text_objects(pkg)
        codes = [t.findtext("ofd:TextCode", namespaces=NS) for t in objects.values()]
        assert codes == [t.text for t in layout.texts if t.text], code
        # every face value and the certificate's key data are printed, whole
        tagged = _tagged(pkg)
        for role in {t.role for t in layout.texts}:
            printed = "".join(objects[i].findtext("ofd:TextCode", namespaces=NS) for i in tagged[role])
            assert printed == layout.text_of(role), (code, role)
        for field in prepared.entry.face_fields():
            if f"value:{field.name}" in tagged:
                assert layout.text_of(f"value:{field.name}")
        assert prepared.draft.certificate_number in layout.text_of("number")
        assert str(prepared.identifier) in layout.text_of("identifier")


def test_metadata_in_custom_datas_and_attachment(faces: Faces, packages: dict[str, bytes]) -> None:
    for code, (prepared, _) in faces.items():
        pkg = Package.load(packages[code])
        ofd = pkg.xml("OFD.xml")
        custom = {c.get("Name"): c.text for c in ofd.iterfind(".//ofd:CustomData", NS)}
        assert custom == prepared.metadata, code
        info = ofd.find("ofd:DocBody/ofd:DocInfo", NS)
        assert info.findtext("ofd:Title", namespaces=NS) == prepared.entry.name
        assert info.findtext("ofd:Author", namespaces=NS) == prepared.entry.issuer.name
        assert info.findtext("ofd:Creator", namespaces=NS) == "certstore"
        assert info.findtext("ofd:CreationDate", namespaces=NS) == prepared.draft.issue_date.isoformat()
        attachments = pkg.xml("Doc_0/Attachs/Attachments.xml").findall("ofd:Attachment", NS)
        assert [
            (a.get("Name"), a.get("Visible"), a.findtext("ofd:FileLoc", namespaces=NS)) for a in attachments
        ] == [("metadata", "false", "metadata.xml")]
        items = pkg.xml("Doc_0/Attachs/metadata.xml").findall("m:Item", META_NS)
        assert {i.get("Name"): i.text for i in items} == prepared.metadata
        assert next(i for i in items if i.get("Name") == "ZZBS").get("Title") == "证照标识"


def test_ids_and_tag_file(packages: dict[str, bytes]) -> None:
    pkg = Package.load(packages[MAIN_CODE])
    document = pkg.xml("Doc_0/Document.xml")
    page_id = int(document.find("ofd:Pages/ofd:Page", NS).get("ID"))
    ids = [
        int(e.get("ID"))
        for path in ("Doc_0/PublicRes.xml", "Doc_0/DocumentRes.xml", "Doc_0/Pages/Page_0/Content.xml")
        for e in pkg.xml(path).iter()
        if isinstance(e.tag, str) and e.get("ID")
    ]
    ids.append(page_id)
    assert len(ids) == len(set(ids))
    assert int(document.findtext("ofd:CommonData/ofd:MaxUnitID", namespaces=NS)) == max(ids)
    custom_tag = pkg.xml("Doc_0/Tags/CustomTags.xml").find("ofd:CustomTag", NS)
    assert custom_tag.get("TypeID") == "cert"
    tags = pkg.xml("Doc_0/Tags/Tag_Certificate.xml")
    assert {ref.get("PageRef") for ref in tags.iterfind(".//t:ObjectRef", TAG_NS)} == {str(page_id)}
    fields = {f.get("Name"): f.get("Metadata") for f in tags.findall("t:Field", TAG_NS)}
    assert fields["number"] == "ZZBH" and fields["identifier"] == "ZZBS" and fields["qr_code"] is None
    assert set(_tagged(pkg)["qr_code"]) <= set(ids)


def test_glyphs_placed_with_the_embedded_font_advances(main_face: tuple[PreparedVersion, FaceLayout]) -> None:
    _, layout = main_face
    pkg = Package.load(build_ofd(layout, metadata={}))
    fonts = pkg.xml("Doc_0/PublicRes.xml").findall(".//ofd:Font", NS)
    assert len(fonts) == 1 and fonts[0].get("FontName") == layout.font_family
    font = TTFont(io.BytesIO(pkg.files["Doc_0/Res/" + fonts[0].findtext("ofd:FontFile", namespaces=NS)]))
    cmap, hmtx, units = font.getBestCmap(), font["hmtx"].metrics, font["head"].unitsPerEm
    assert set(layout.characters()) <= {chr(c) for c in cmap}
    assert font["head"].modified == font["head"].created  # pinned: the same text gives the same bytes
    for item, obj in zip([t for t in layout.texts if t.text], _text_objects(pkg).values(), strict=True):
        assert float(obj.get("Size")) == pytest.approx(item.size_mm, abs=1e-3)
        assert obj.get("Weight") == ("700" if item.bold else None)
        assert obj.find("ofd:FillColor", NS).get("Value") == " ".join(map(str, item.color))
        code = obj.find("ofd:TextCode", NS)
        boundary = _floats(obj.get("Boundary"))
        # lay_out_face puts the first glyph at box.x; the baseline at box.y + 0.8 em
        assert boundary[0] + float(code.get("X")) == pytest.approx(item.box.x, abs=2e-3)
        assert boundary[1] + float(code.get("Y")) == pytest.approx(item.baseline_y, abs=2e-3)
        expected = [
            hmtx[cmap[ord(ch)]][0] / units * item.size_mm + item.letter_spacing_mm for ch in item.text[:-1]
        ]
        assert _floats(code.get("DeltaX")) == pytest.approx(expected, abs=2e-3)
        # the whole line, with the font's ascent and descent, stays inside its Boundary
        assert float(code.get("X")) + sum(expected) <= boundary[2]
        assert boundary[1] <= item.baseline_y - font["head"].yMax / units * item.size_mm
        assert boundary[1] + boundary[3] >= item.baseline_y - font["head"].yMin / units * item.size_mm


def test_images_base_layer_first_and_qr_on_top(main_face: tuple[PreparedVersion, FaceLayout]) -> None:
    _, layout = main_face
    pkg = Package.load(build_ofd(layout, metadata={}))
    medias = {
        int(m.get("ID")): pkg.files["Doc_0/Res/" + m.findtext("ofd:MediaFile", namespaces=NS)]
        for m in pkg.xml("Doc_0/DocumentRes.xml").iterfind(".//ofd:MultiMedia", NS)
    }
    layers = pkg.xml("Doc_0/Pages/Page_0/Content.xml").findall("ofd:Content/ofd:Layer", NS)
    assert [layer.get("Type") for layer in layers] == ["Background", "Body"]
    base, *_ = layers[0]
    assert medias[int(base.get("ResourceID"))] == next(
        i.data for i in layout.images if i.role == "base_image"
    )
    assert base.get("CTM") == f"{layout.width_mm:g} 0 0 {layout.height_mm:g} 0 0"
    qr = next(i for i in layout.images if i.role == "qr_code")
    top = layers[1][-1]
    assert etree.QName(top).localname == "ImageObject"
    assert medias[int(top.get("ResourceID"))] == qr.data
    assert _floats(top.get("Boundary")) == pytest.approx([qr.box.x, qr.box.y, qr.box.w, qr.box.h], abs=1e-3)


def test_seal_pictures_in_the_layout_are_not_drawn(main_face: tuple[PreparedVersion, FaceLayout]) -> None:
    _, layout = main_face
    png = next(i.data for i in layout.images if i.role == "qr_code")
    with_seal = dataclasses.replace(
        layout, images=(*layout.images, ImageItem("seal", png, "image/png", Box(1, 1, 9, 9)))
    )
    assert build_ofd(with_seal, metadata={}) == build_ofd(layout, metadata={})


# --- determinism and the ZIP --------------------------------------------------------------------------------


def test_deterministic(main_face: tuple[PreparedVersion, FaceLayout], packages: dict[str, bytes]) -> None:
    prepared, layout = main_face
    again = build_ofd(layout, metadata=dict(prepared.metadata))
    assert again == packages[MAIN_CODE]
    with zipfile.ZipFile(io.BytesIO(again)) as archive:
        infos = archive.infolist()
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    expected = {
        i.filename: zipfile.ZIP_STORED if i.filename.endswith(".png") else zipfile.ZIP_DEFLATED for i in infos
    }
    assert {i.filename: i.compress_type for i in infos} == expected  # images are already compressed
    assert [i.filename for i in infos][:2] == ["OFD.xml", "Doc_0/Document.xml"]


def test_doc_id_and_creation_date(main_face: tuple[PreparedVersion, FaceLayout]) -> None:
    prepared, layout = main_face
    default = Package.load(build_ofd(layout, metadata=prepared.metadata)).xml("OFD.xml")
    doc_id = default.findtext(".//ofd:DocID", namespaces=NS)
    assert len(doc_id) == 32 and int(doc_id, 16) >= 0
    other_version = {**prepared.metadata, "ZZBS": prepared.metadata["ZZBS"][:-5] + "002.X"}
    assert (
        Package.load(build_ofd(layout, metadata=other_version))
        .xml("OFD.xml")
        .findtext(".//ofd:DocID", namespaces=NS)
        != doc_id
    )
    given = Package.load(
        build_ofd(layout, metadata=prepared.metadata, doc_id="ABC123", creation_date=date(2026, 1, 2))
    ).xml("OFD.xml")
    assert given.findtext(".//ofd:DocID", namespaces=NS) == "ABC123"
    assert given.findtext(".//ofd:CreationDate", namespaces=NS) == "2026-01-02"


# --- attachments and metadata values -------------------------------------------------------------------------


def test_extra_attachment_carries_face_data(main_face: tuple[PreparedVersion, FaceLayout]) -> None:
    prepared, layout = main_face
    face_json = json.dumps(prepared.face, ensure_ascii=False, sort_keys=True).encode()
    data = build_ofd(
        layout,
        metadata=prepared.metadata,
        attachments=[Attachment("face", "face.json", face_json, "json", usage="face-data")],
        creation_date=date(2025, 5, 20),
    )
    assert check_package(data) == []
    pkg = Package.load(data)
    entries = pkg.xml("Doc_0/Attachs/Attachments.xml").findall("ofd:Attachment", NS)
    assert [(e.get("ID"), e.get("Name"), e.get("Format"), e.get("Usage")) for e in entries] == [
        ("att1", "metadata", "xml", "metadata"),
        ("att2", "face", "json", "face-data"),
    ]
    assert entries[1].get("CreationDate") == "2025-05-20T00:00:00"
    assert float(entries[1].get("Size")) == pytest.approx(len(face_json) / 1024, abs=1e-3)
    assert json.loads(pkg.files["Doc_0/Attachs/face.json"]) == prepared.face


def test_metadata_values_round_trip(main_face: tuple[PreparedVersion, FaceLayout]) -> None:
    _, layout = main_face
    metadata = {
        "KZ_count": 3,
        "KZ_flag": True,
        "KZ_date": date(2025, 1, 2),
        "KZ_text": "两行\n文本 & <标记>\r",
    }
    pkg = Package.load(build_ofd(layout, metadata=metadata))
    custom = {c.get("Name"): c.text for c in pkg.xml("OFD.xml").iterfind(".//ofd:CustomData", NS)}
    assert custom == {
        "KZ_count": "3",
        "KZ_flag": "true",
        "KZ_date": "2025-01-02",
        "KZ_text": "两行\n文本 & <标记>\r",
    }


# --- refusals ------------------------------------------------------------------------------------------------


def _small_layout(*texts: TextItem, images: tuple[ImageItem, ...] = ()) -> FaceLayout:
    return FaceLayout(100, 60, texts, images)


def _line(text: str) -> TextItem:
    return TextItem(text, Box(10, 10, 80, 6), 5, "value:x", Align.LEFT)


@pytest.mark.parametrize(
    ("layout", "metadata", "message"),
    [
        (_small_layout(_line("坏\x01字")), {}, "U\\+0001"),
        (_small_layout(_line("两\n行")), {}, "control character U\\+000A"),
        (_small_layout(_line("\ud800")), {}, "U\\+D800"),
        (_small_layout(_line("生僻\U000323af")), {}, "no glyph"),
        (_small_layout(_line("好")), {"ZZMC": "坏\x0b"}, "metadata 'ZZMC'"),
        (_small_layout(_line("好")), {"": "x"}, "non-empty"),
        (_small_layout(_line("好")), {"KZ_x": object()}, "no text form"),
        (FaceLayout(0, 60, (_line("好"),)), {}, "page size"),
        (_small_layout(TextItem("好", Box(0, 0, 1, 1), -1, "x")), {}, "positive size"),
        (_small_layout(TextItem("好", Box(float("nan"), 0, 1, 1), 1, "x")), {}, "finite"),
        (_small_layout(TextItem("好", Box(0, 0, 1, 1), 1, "x", color=(0, 0, 256))), {}, "colour"),
        (
            _small_layout(images=(ImageItem("qr_code", b"GIF89a", "image/tiff", Box(0, 0, 5, 5)),)),
            {},
            "media type",
        ),
        (
            _small_layout(images=(ImageItem("qr_code", b"not a png", "image/png", Box(0, 0, 5, 5)),)),
            {},
            "not image/png",
        ),
        (
            _small_layout(images=(ImageItem("qr_code", b"GIF89a..", "image/gif", Box(0, 0, 0, 5)),)),
            {},
            "positive",
        ),
    ],
)
def test_refuses_what_it_cannot_represent(layout: FaceLayout, metadata: dict, message: str) -> None:
    with pytest.raises(OfdBuildError, match=message):
        build_ofd(layout, metadata=metadata)


@pytest.mark.parametrize(
    ("attachment", "message"),
    [
        (Attachment("x", "../evil.json", b"{}", "json"), "file names"),
        (Attachment("x", "metadata.xml", b"{}", "xml"), "taken"),
        (Attachment("", "a.json", b"{}", "json"), "name must not be empty"),
        (Attachment("x\x00", "a.json", b"{}", "json"), "XML 1.0"),
    ],
)
def test_refuses_bad_attachments(attachment: Attachment, message: str) -> None:
    with pytest.raises(OfdBuildError, match=message):
        build_ofd(_small_layout(_line("好")), metadata={}, attachments=[attachment])


def test_refuses_the_same_attachment_twice() -> None:
    twice = [Attachment("a", "a.json", b"{}", "json"), Attachment("b", "a.json", b"[]", "json")]
    with pytest.raises(OfdBuildError, match="taken"):
        build_ofd(_small_layout(_line("好")), metadata={}, attachments=twice)


# --- the structural checks themselves --------------------------------------------------------------------------


def test_structure_checks_catch_vendor_deviations() -> None:
    """The checker is not vacuous: ofdrw 1.6 wrote SignedValue before SignedInfo and MaxSignId after the
    Signature entries; the gomain file (another vendor) has them in schema order."""
    with zipfile.ZipFile(FIXTURES / "ofdrw-sign__allprotected.ofd") as archive:
        ofdrw = etree.fromstring(archive.read("Doc_0/Signs/Sign_0/Signature.xml"))
        ofdrw_list = etree.fromstring(archive.read("Doc_0/Signs/Signatures.xml"))
    assert "Signature.xml:Signature: child SignedInfo out of schema order" in check_element(
        ofdrw, "Signature.xml"
    )
    assert any("MaxSignId out of schema order" in p for p in check_element(ofdrw_list, "Signatures.xml"))
    with zipfile.ZipFile(FIXTURES / "ofdrw-sign__v4signed.ofd") as archive:
        gomain = etree.fromstring(archive.read("Doc_0/Signs/Sign_0/Signature.xml"))
    assert check_element(gomain, "Signature.xml") == []


# --- an independent OFD reader ---------------------------------------------------------------------------------


def _red_share(png: Path, box: Box, page_mm: tuple[float, float]) -> float:
    image = Image.open(png).convert("RGB")
    sx, sy = image.width / page_mm[0], image.height / page_mm[1]
    region = image.crop(
        (int(box.x * sx), int(box.y * sy), int((box.x + box.w) * sx), int((box.y + box.h) * sy))
    )
    red = 0
    for y in range(region.height):
        for x in range(region.width):
            r, g, b = region.getpixel((x, y))
            red += r > 180 and g < 90 and b < 90
    return red / (region.width * region.height)


def test_easyofd_opens_and_renders_our_file(
    tmp_path: Path, main_face: tuple[PreparedVersion, FaceLayout], unsigned_ofd: bytes, doubly_sealed: bytes
) -> None:
    """easyofd (PyPI) parses our package, draws the text with the embedded font and the seals from
    SignedValue.dat at their StampAnnot. Set CERTSTORE_EASYOFD_PYTHON to a Python that has easyofd when it
    lives in its own virtual environment (it brings PyMuPDF, reportlab, numpy, onnxruntime)."""
    _, layout = main_face
    results = {name: easyofd_render(data, tmp_path, name)
               for name, data in (("unsigned", unsigned_ofd), ("sealed", doubly_sealed))}  # fmt: skip
    assert results["unsigned"]["pages"] == 1
    text = results["unsigned"]["text"][0]
    for role in ("title", "number", "issuer", "date", "value:project_name"):
        assert layout.text_of(role).replace(" ", "") in text.replace("\n", "").replace(" ", ""), role
    page = (layout.width_mm, layout.height_mm)
    assert layout.seal_box is not None
    unsigned_red = _red_share(tmp_path / "unsigned_0.png", layout.seal_box, page)
    sealed_red = _red_share(tmp_path / "sealed_0.png", layout.seal_box, page)
    assert sealed_red > unsigned_red + 0.05, (unsigned_red, sealed_red)


def _tag_xml_by_lxml(page_id: int, tags: list[tuple[str, list[int]]]) -> bytes:
    """Tag_Certificate.xml as the writer built it with lxml before it wrote the text itself."""
    ns = TAG_NS["t"]
    root = etree.Element(f"{{{ns}}}Certificate", {"Version": "1"}, nsmap={None: ns})
    for role, object_ids in tags:
        attrs = {"Name": role}
        if role in ROLE_METADATA:
            attrs["Metadata"] = ROLE_METADATA[role]
        field = etree.SubElement(root, f"{{{ns}}}Field", attrs)
        for object_id in object_ids:
            etree.SubElement(field, f"{{{ns}}}ObjectRef", {"PageRef": str(page_id)}).text = str(object_id)
    return XML_DECLARATION + etree.tostring(root, encoding="UTF-8", xml_declaration=False)


@pytest.mark.parametrize(
    "tags",
    [
        [],
        [("title", [3, 4]), ("value:project_name", [5]), ("qr_code", [])],
        [("a&b\"<>\n\t'", [7]), ("中文 角色", [8, 9, 10])],
    ],
    ids=["none", "roles", "escaped"],
)
def test_tag_file_text_is_what_lxml_writes(tags: list[tuple[str, list[int]]]) -> None:
    assert _tag_xml(12, tags) == _tag_xml_by_lxml(12, tags)


def test_text_objects_are_what_lxml_writes() -> None:
    """The page's text objects, written as text (and again from the writer's cache), are byte for byte lxml's
    serialisation of the same tree: markup characters escaped, a line cut into runs per font (a rare character
    in the fallback font), bold, colour, every alignment and letter spacing."""
    role = f"value:{uuid.uuid4().hex}"  # lines no earlier test wrote: the first build writes them
    texts = (
        TextItem("A&B <c> \"d\" 'e' > f", Box(10, 5, 80, 6), 5, role),
        TextItem("粗体居中", Box(10, 15, 80, 6), 6, role, Align.CENTER, bold=True, color=(200, 16, 46)),
        TextItem("右对齐 1.5", Box(10, 25, 80, 6), 4, role, Align.RIGHT, letter_spacing_mm=0.5),
        TextItem("王䶮生僻字", Box(10, 35, 80, 6), 5, role),
    )
    pkg = Package.load(build_ofd(_small_layout(*texts), metadata={}))
    content = pkg.files["Doc_0/Pages/Page_0/Content.xml"]
    again = Package.load(build_ofd(_small_layout(*texts), metadata={}))
    assert again.files["Doc_0/Pages/Page_0/Content.xml"] == content
    root = etree.fromstring(content)
    assert content == XML_DECLARATION + etree.tostring(root, encoding="UTF-8", xml_declaration=False)
    objects = pkg.find(root, ".//ofd:TextObject")
    assert len(objects) == 6  # the rare character's line is three runs: main, fallback, main font
    assert [list(o.attrib) for o in objects[:2]] == [
        ["ID", "Boundary", "Font", "Size"],
        ["ID", "Boundary", "Font", "Size", "Weight"],
    ]
    codes = [o.find("ofd:TextCode", {"ofd": OFD_NS}) for o in objects]
    assert codes[0].text == "A&B <c> \"d\" 'e' > f" and b"A&amp;B &lt;c&gt;" in content
    assert objects[1].find("ofd:FillColor", {"ofd": OFD_NS}).get("Value") == "200 16 46"
    assert [c.text for c in codes[3:]] == ["王", "䶮", "生僻字"]
    assert len({o.get("Font") for o in objects[3:]}) == 2 and codes[4].get("DeltaX") is None
