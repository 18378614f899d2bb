"""Compact structural checks of an OFD package, written from the GB/T 33190 Annex A structure summarised in
``/work/shared/STANDARDS.md`` §2 (element order, required attributes, namespace, locations, IDs).

Not a schema validator: it knows the elements certstore writes (plus the optional siblings the schema allows
around them) and reports every deviation as a readable string. :func:`check_package` returns the problems
of a whole package (an empty list when it is sound).
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from dataclasses import dataclass

from lxml import etree

OFD_NS = "http://www.ofdspec.org/2016"

#: (child, min, max) in schema order; max None = unbounded.
Seq = tuple[tuple[str, int, int | None], ...]


@dataclass(frozen=True)
class Spec:
    required: frozenset[str] = frozenset()
    children: Seq = ()
    choice: frozenset[str] | None = None  # children in any order and number (xs:choice maxOccurs=unbounded)
    text: bool = False  # simple content


def _s(required: str = "", children: Seq = (), *, choice: str | None = None, text: bool = False) -> Spec:
    return Spec(frozenset(required.split()), children, frozenset(choice.split()) if choice else None, text)


def _words(text: str) -> list[str]:
    return text.split()


ONE, OPT, MANY, SOME = (1, 1), (0, 1), (0, None), (1, None)


def _seq(*items: tuple[str, tuple[int, int | None]]) -> Seq:
    return tuple((name, lo, hi) for name, (lo, hi) in items)


TEXT = _s(text=True)

#: Specs by element name; "Parent/Child" keys override where one name has two meanings.
SPECS: dict[str, Spec] = {
    # OFD.xml
    "OFD": _s("Version DocType", _seq(("DocBody", SOME))),
    "DocBody": _s("", _seq(("DocInfo", ONE), ("DocRoot", ONE), ("Versions", OPT), ("Signatures", OPT))),
    "DocInfo": _s(
        "",
        _seq(
            ("DocID", ONE),
            ("Title", OPT),
            ("Author", OPT),
            ("Subject", OPT),
            ("Abstract", OPT),
            ("CreationDate", OPT),
            ("ModDate", OPT),
            ("DocUsage", OPT),
            ("Cover", OPT),
            ("Keywords", OPT),
            ("Creator", OPT),
            ("CreatorVersion", OPT),
            ("CustomDatas", OPT),
        ),
    ),
    "CustomDatas": _s("", _seq(("CustomData", SOME))),
    "CustomData": _s("Name", text=True),
    # Document.xml
    "Document": _s(
        "",
        _seq(
            ("CommonData", ONE),
            ("Pages", ONE),
            ("Outlines", OPT),
            ("Permissions", OPT),
            ("Actions", OPT),
            ("VPreferences", OPT),
            ("Bookmarks", OPT),
            ("Annotations", OPT),
            ("CustomTags", OPT),
            ("Attachments", OPT),
            ("Extensions", OPT),
        ),
    ),
    "CommonData": _s(
        "",
        _seq(
            ("MaxUnitID", ONE),
            ("PageArea", ONE),
            ("PublicRes", MANY),
            ("DocumentRes", MANY),
            ("TemplatePage", MANY),
            ("DefaultCS", OPT),
        ),
    ),
    "PageArea": _s(
        "", _seq(("PhysicalBox", ONE), ("ApplicationBox", OPT), ("ContentBox", OPT), ("BleedBox", OPT))
    ),
    "Pages": _s("", _seq(("Page", SOME))),
    "Pages/Page": _s("ID BaseLoc"),
    # resources
    "Res": _s("BaseLoc", choice="ColorSpaces DrawParams Fonts MultiMedias CompositeGraphicUnits"),
    "Fonts": _s("", _seq(("Font", SOME))),
    "Font": _s("ID FontName", _seq(("FontFile", OPT))),
    "MultiMedias": _s("", _seq(("MultiMedia", SOME))),
    "MultiMedia": _s("ID Type", _seq(("MediaFile", ONE))),
    # page content (root "Page")
    "Page": _s(
        "", _seq(("Template", MANY), ("PageRes", MANY), ("Area", OPT), ("Content", OPT), ("Actions", OPT))
    ),
    "Content": _s("", _seq(("Layer", SOME))),
    "Layer": _s("ID", choice="TextObject PathObject ImageObject CompositeObject PageBlock"),
    "TextObject": _s(
        "ID Boundary Font Size",
        _seq(("Actions", OPT), ("Clips", OPT), ("FillColor", OPT), ("StrokeColor", OPT), ("TextCode", SOME)),
    ),
    "FillColor": _s(""),
    "StrokeColor": _s(""),
    "PathObject": _s(
        "ID Boundary",
        _seq(
            ("Actions", OPT),
            ("Clips", OPT),
            ("StrokeColor", OPT),
            ("FillColor", OPT),
            ("AbbreviatedData", ONE),
        ),
    ),
    "TextCode": _s("", text=True),
    "ImageObject": _s("ID Boundary ResourceID", _seq(("Actions", OPT), ("Clips", OPT), ("Border", OPT))),
    # attachments and tags
    "Attachments": _s("", _seq(("Attachment", MANY))),
    "Attachment": _s("ID Name", _seq(("FileLoc", ONE))),
    "CustomTags": _s("", _seq(("CustomTag", MANY))),
    # NameSpace is required by the Annex A schema, TypeID by the standard's body text: certstore writes both
    "CustomTag": _s("NameSpace TypeID", _seq(("SchemaLoc", OPT), ("FileLoc", ONE))),
    # signatures
    "Signatures": _s("", _seq(("MaxSignId", OPT), ("Signature", MANY))),
    "Signatures/Signature": _s("ID BaseLoc"),
    "Signature": _s("", _seq(("SignedInfo", ONE), ("SignedValue", ONE))),
    "SignedInfo": _s(
        "",
        _seq(
            ("Provider", ONE),
            ("SignatureMethod", OPT),
            ("SignatureDateTime", OPT),
            ("References", ONE),
            ("StampAnnot", MANY),
            ("Seal", OPT),
        ),
    ),
    "Provider": _s("ProviderName"),
    "References": _s("CheckMethod", _seq(("Reference", SOME))),
    "Reference": _s("FileRef", _seq(("CheckValue", ONE))),
    "StampAnnot": _s("ID PageRef Boundary"),
    "Seal": _s("", _seq(("BaseLoc", ONE))),
}
for _name in _words(
    "DocID Title Author CreationDate Creator CreatorVersion DocRoot MaxUnitID PhysicalBox ApplicationBox "
    "ContentBox BleedBox PublicRes DocumentRes AbbreviatedData "
    "FontFile MediaFile FileLoc MaxSignId SignatureMethod SignatureDateTime CheckValue BaseLoc SignedValue"
):
    SPECS.setdefault(_name, TEXT)
for _name in ("DocBody/Signatures", "Document/Annotations", "Document/CustomTags", "Document/Attachments"):
    SPECS[_name] = TEXT
SPECS["TemplatePage"] = _s("ID BaseLoc")

#: Elements whose ID attribute is an ST_ID (document-wide unsigned integer) and what refers to them.
ST_ID_ELEMENTS = {"Page", "Font", "MultiMedia", "Layer", "TextObject", "ImageObject", "PathObject"}


def local(element: etree._Element) -> str:
    return etree.QName(element).localname


def check_element(element: etree._Element, where: str, parent: str | None = None) -> list[str]:
    """Namespace, required attributes and child order of ``element`` and its descendants."""
    problems: list[str] = []
    name = local(element)
    path = f"{where}:{name}"
    if etree.QName(element).namespace != OFD_NS:
        return [f"{path}: element not in the OFD namespace ({element.tag})"]
    spec = SPECS.get(f"{parent}/{name}") if parent else None
    spec = spec or SPECS.get(name)
    if spec is None:
        return [f"{path}: element not expected here"]
    for attr in element.attrib:
        if etree.QName(attr).namespace is not None:
            problems.append(f"{path}: attribute {attr} must be unqualified")
    problems += [
        f"{path}: missing required attribute {a}" for a in sorted(spec.required - set(element.attrib))
    ]
    children = [c for c in element if isinstance(c.tag, str)]
    if spec.text:
        if children:
            problems.append(f"{path}: simple-content element has child elements")
        return problems
    if spec.choice is not None:
        problems += [f"{path}: unexpected child {local(c)}" for c in children if local(c) not in spec.choice]
    else:
        position, counts = 0, [0] * len(spec.children)
        for child in children:
            child_name = local(child)
            index = next(
                (i for i in range(position, len(spec.children)) if spec.children[i][0] == child_name), None
            )
            if index is None:
                known = any(c[0] == child_name for c in spec.children)
                problems.append(
                    f"{path}: child {child_name} " + ("out of schema order" if known else "not allowed")
                )
                continue
            position = index
            counts[index] += 1
            hi = spec.children[index][2]
            if hi is not None and counts[index] > hi:
                problems.append(f"{path}: too many {child_name}")
        for (child_name, lo, _), count in zip(spec.children, counts, strict=True):
            if count < lo:
                problems.append(f"{path}: missing {child_name}")
    for child in children:
        problems += check_element(child, where, name)
    return problems


def resolve(base_dir: str, location: str) -> str:
    location = location.strip()
    if location.startswith("/"):
        return posixpath.normpath(location.lstrip("/"))
    return posixpath.normpath(posixpath.join(base_dir, location))


@dataclass
class Package:
    files: dict[str, bytes]

    @classmethod
    def load(cls, data: bytes) -> Package:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return cls(
                {i.filename: archive.read(i) for i in archive.infolist() if not i.filename.endswith("/")}
            )

    def xml(self, path: str) -> etree._Element:
        return etree.fromstring(self.files[path])

    def find(self, root: etree._Element, path: str) -> list[etree._Element]:
        return root.findall(path, {"ofd": OFD_NS})


def _loc(pkg: Package, base_dir: str, location: str | None, what: str, problems: list[str]) -> str | None:
    if not location or not location.strip():
        problems.append(f"{what}: empty location")
        return None
    path = resolve(base_dir, location)
    if path not in pkg.files:
        problems.append(f"{what}: {location!r} does not resolve to a file ({path})")
        return None
    return path


def check_package(data: bytes) -> list[str]:
    """Every structural problem of the OFD package ``data`` (see the module docstring)."""
    pkg = Package.load(data)
    problems: list[str] = []
    checked: set[str] = set()

    def part(path: str) -> etree._Element:
        content = pkg.files[path]
        if path not in checked and path.endswith(".xml"):
            checked.add(path)
            if not content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>'):
                problems.append(f"{path}: does not start with the UTF-8 XML declaration")
        return pkg.xml(path)

    if "OFD.xml" not in pkg.files:
        return ["no OFD.xml"]
    ofd = part("OFD.xml")
    problems += check_element(ofd, "OFD.xml")
    if ofd.get("Version") != "1.0" or ofd.get("DocType") != "OFD":
        problems.append("OFD.xml: Version must be 1.0 and DocType OFD")
    document_path = _loc(pkg, "", pkg.find(ofd, "ofd:DocBody/ofd:DocRoot")[0].text, "DocRoot", problems)
    if document_path is None:
        return problems
    doc_dir = posixpath.dirname(document_path)
    document = part(document_path)
    problems += check_element(document, document_path)

    ids: dict[int, str] = {}

    def register(element: etree._Element, where: str) -> None:
        raw = element.get("ID", "")
        if not raw.isdigit():
            problems.append(f"{where}: {local(element)} ID {raw!r} is not an ST_ID")
            return
        value = int(raw)
        if value in ids:
            problems.append(f"{where}: ID {value} used twice ({ids[value]} and {local(element)})")
        ids[value] = local(element)

    # resources
    fonts: set[int] = set()
    medias: set[int] = set()
    for tag in ("PublicRes", "DocumentRes"):
        for res_loc in pkg.find(document, f"ofd:CommonData/ofd:{tag}"):
            res_path = _loc(pkg, doc_dir, res_loc.text, tag, problems)
            if res_path is None:
                continue
            res = part(res_path)
            problems += check_element(res, res_path)
            res_dir = resolve(posixpath.dirname(res_path), res.get("BaseLoc", ""))
            for font in pkg.find(res, "ofd:Fonts/ofd:Font"):
                register(font, res_path)
                fonts.add(int(font.get("ID", "0")))
                for file_loc in pkg.find(font, "ofd:FontFile"):
                    _loc(pkg, res_dir, file_loc.text, f"{res_path} FontFile", problems)
            for media in pkg.find(res, "ofd:MultiMedias/ofd:MultiMedia"):
                register(media, res_path)
                medias.add(int(media.get("ID", "0")))
                _loc(
                    pkg, res_dir, pkg.find(media, "ofd:MediaFile")[0].text, f"{res_path} MediaFile", problems
                )

    # pages
    page_ids: set[int] = set()
    for page in pkg.find(document, "ofd:Pages/ofd:Page"):
        register(page, document_path)
        page_ids.add(int(page.get("ID", "0")))
        content_path = _loc(pkg, doc_dir, page.get("BaseLoc"), "Page BaseLoc", problems)
        if content_path is None:
            continue
        content = part(content_path)
        problems += check_element(content, content_path)
        for element in content.iterdescendants():
            if isinstance(element.tag, str) and local(element) in ST_ID_ELEMENTS:
                register(element, content_path)
        for text in content.iter(f"{{{OFD_NS}}}TextObject"):
            if int(text.get("Font", "0")) not in fonts:
                problems.append(
                    f"{content_path}: TextObject {text.get('ID')} refers to unknown font {text.get('Font')}"
                )
        for image in content.iter(f"{{{OFD_NS}}}ImageObject"):
            if int(image.get("ResourceID", "0")) not in medias:
                problems.append(f"{content_path}: ImageObject {image.get('ID')} refers to unknown resource")

    max_units = pkg.find(document, "ofd:CommonData/ofd:MaxUnitID")
    max_unit = (max_units[0].text or "") if max_units else ""
    if not max_unit.isdigit() or (ids and int(max_unit) < max(ids)):
        problems.append(
            f"{document_path}: MaxUnitID {max_unit!r} is below the largest ID {max(ids, default=0)}"
        )

    # attachments and custom tags
    for tag, item in (("Attachments", "Attachment"), ("CustomTags", "CustomTag")):
        for loc in pkg.find(document, f"ofd:{tag}"):
            list_path = _loc(pkg, doc_dir, loc.text, tag, problems)
            if list_path is None:
                continue
            listing = part(list_path)
            problems += check_element(listing, list_path)
            for entry in pkg.find(listing, f"ofd:{item}"):
                file_loc = pkg.find(entry, "ofd:FileLoc")[0].text
                _loc(pkg, posixpath.dirname(list_path), file_loc, f"{list_path} FileLoc", problems)
            if item == "Attachment":
                attachment_ids = [a.get("ID") for a in pkg.find(listing, "ofd:Attachment")]
                if len(set(attachment_ids)) != len(attachment_ids):
                    problems.append(f"{list_path}: attachment IDs not unique")

    # signatures
    signatures_locs = pkg.find(ofd, "ofd:DocBody/ofd:Signatures")
    if signatures_locs:
        signatures_path = _loc(pkg, "", signatures_locs[0].text, "Signatures", problems)
        if signatures_path is not None:
            signatures = part(signatures_path)
            problems += check_element(signatures, signatures_path)
            sign_ids = [s.get("ID") for s in pkg.find(signatures, "ofd:Signature")]
            for entry in pkg.find(signatures, "ofd:Signature"):
                if entry.get("Type", "Seal") not in ("Seal", "Sign"):
                    problems.append(f"{signatures_path}: Type {entry.get('Type')!r}")
                signature_path = _loc(
                    pkg,
                    posixpath.dirname(signatures_path),
                    entry.get("BaseLoc"),
                    "Signature BaseLoc",
                    problems,
                )
                if signature_path is None:
                    continue
                signature = part(signature_path)
                problems += check_element(signature, signature_path)
                base = posixpath.dirname(signature_path)
                for reference in pkg.find(signature, "ofd:SignedInfo/ofd:References/ofd:Reference"):
                    _loc(pkg, base, reference.get("FileRef"), f"{signature_path} FileRef", problems)
                for seal in pkg.find(signature, "ofd:SignedInfo/ofd:Seal/ofd:BaseLoc"):
                    _loc(pkg, base, seal.text, f"{signature_path} Seal", problems)
                value = pkg.find(signature, "ofd:SignedValue")
                if value:
                    _loc(pkg, base, value[0].text, f"{signature_path} SignedValue", problems)
                for stamp in pkg.find(signature, "ofd:SignedInfo/ofd:StampAnnot"):
                    sign_ids.append(stamp.get("ID"))
                    if int(stamp.get("PageRef", "0")) not in page_ids:
                        problems.append(
                            f"{signature_path}: StampAnnot PageRef {stamp.get('PageRef')} is no page ID"
                        )
            if len(set(sign_ids)) != len(sign_ids):
                problems.append(f"{signatures_path}: signature / stamp IDs not unique: {sign_ids}")
    return problems
