"""Reading OFD packages (GB/T 33190-2016) that may be hostile: the verifier's only way into an OFD file.

:meth:`OfdReader.open` turns the bytes of a presented file into an immutable :class:`OfdPackage` or raises
:class:`OfdFormatError` with a message that names the entry, element or limit concerned. Nothing is ever
written to disk and nothing is fetched from the network.

Defences, in the order they run:

1. **Size**: the file itself (:attr:`Limits.max_file_size`).
2. **The ZIP container** (:mod:`.container`): the canonical-package rule — exactly one archive from byte 0 to
   its end, every local header listed in and agreeing with the central directory, no other format's signature
   where its readers look, names canonical and distinct however a reader folds them — then, before anything is
   decompressed, the number of entries, the size of the directory, encryption, compression method and the
   *declared* sizes: per entry, per-entry compression ratio (zip bombs), and in total.
3. **While decompressing**: no entry is inflated beyond its declared size + 1 bytes (declared sizes lie), and an
   entry whose real size or CRC-32 differs from the declared one is refused.
4. **XML** (lxml): no DTD loading, no entity resolution, no network, no huge trees, and any ``DOCTYPE`` is
   refused outright (XXE, billion laughs); size and nesting depth are capped.

Bytes before the archive (some KingGrid files) are refused like any other byte no entry accounts for: a streaming
reader reads them as the package.

Locations (ST_Loc) resolve as STANDARDS §2.1 says: ``/a/b`` from the package root, anything else relative to
the directory of the XML file that contains it; a location that climbs out of the package is refused. Two
vendor quirks are tolerated with a warning: a relative location that only exists when read from the package
root, and one that only matches an entry when case is ignored (``TPLS/`` for ``Tpls/``).

XML is read by local element name, in any order (real files put ``SignedValue`` before ``SignedInfo`` or the
``StampAnnot`` after the ``References``).
"""

from __future__ import annotations

import posixpath
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from lxml import etree

from .container import fold_name, inflate, read_container
from .limits import DEFAULT_LIMITS, Limits, MiB, NonCanonicalPackageError, NotOfdError, OfdFormatError

__all__ = [
    "DEFAULT_LIMITS",
    "OFD_NS",
    "DocInfo",
    "Limits",
    "NonCanonicalPackageError",
    "NotOfdError",
    "OfdDocument",
    "OfdFormatError",
    "OfdPackage",
    "OfdReader",
    "OfdSignature",
    "Provider",
    "Reference",
    "SignedInfo",
    "StampAnnot",
    "resolve_location",
]

OFD_NS = "http://www.ofdspec.org/2016"
OFD_XML = "OFD.xml"

_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


# --- The model ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DocInfo:
    """``DocBody/DocInfo`` of OFD.xml. ``custom_datas`` maps ``CustomData/@Name`` to its text."""

    doc_id: str | None
    title: str | None = None
    author: str | None = None
    creator: str | None = None
    creator_version: str | None = None
    creation_date: str | None = None
    custom_datas: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Provider:
    """``SignedInfo/Provider``: the signing product."""

    name: str
    version: str | None
    company: str | None


@dataclass(frozen=True)
class Reference:
    """One ``Reference``: ``file_ref`` and ``check_value`` as written; ``path`` the resolved package path,
    or None with ``problem`` saying why (outside the package, not in the package)."""

    file_ref: str
    check_value: str
    path: str | None
    problem: str | None = None


@dataclass(frozen=True)
class StampAnnot:
    """Where the seal picture is shown: ``page_ref`` is a page *ID*; ``boundary`` and ``clip`` in mm."""

    id: str | None
    page_ref: str | None
    boundary: str | None
    clip: str | None


@dataclass(frozen=True)
class SignedInfo:
    """``Signature/SignedInfo``. ``check_method`` is None when the attribute is absent (schema default MD5)."""

    provider: Provider | None
    signature_method: str | None
    signature_date_time: str | None
    check_method: str | None
    references: tuple[Reference, ...]
    stamp_annots: tuple[StampAnnot, ...]
    seal_loc: str | None
    seal_path: str | None


@dataclass(frozen=True)
class OfdSignature:
    """One ``Signature`` entry of a document's Signatures.xml and the files it leads to.

    Problems that concern only this signature (its Signature.xml missing or malformed, a location outside the
    package …) do not stop the reading of the package: they are listed in ``errors`` and whatever could be read
    is filled in. ``type`` is ``"Seal"`` or ``"Sign"`` (``type_declared`` False when the attribute was omitted,
    which means Seal).
    """

    document: int
    id: str
    type: str
    type_declared: bool
    base_loc: str
    path: str | None
    xml: bytes | None = field(repr=False)
    signed_info: SignedInfo | None
    signed_value_loc: str | None
    signed_value_path: str | None
    signed_value: bytes | None = field(repr=False)
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class OfdDocument:
    """One ``DocBody`` of OFD.xml: its DocInfo, document root (Document.xml) and signatures."""

    index: int
    doc_info: DocInfo
    root_path: str
    signatures_path: str | None
    signatures: tuple[OfdSignature, ...]


@dataclass(frozen=True)
class OfdPackage:
    """A package read by :class:`OfdReader`.

    ``files`` maps every file entry's name to its exact decompressed bytes (directories omitted).
    ``content_files`` maps the files reachable from OFD.xml through the document structure (document roots,
    pages, templates, resources, annotations, attachments, custom tags …) to a description of their role: what
    a reader displays or interprets. ``errors`` are structure failures found in those parts (malformed XML, a
    DOCTYPE); ``warnings`` are deviations that were tolerated.
    """

    files: Mapping[str, bytes] = field(repr=False)
    documents: tuple[OfdDocument, ...]
    content_files: Mapping[str, str]
    #: Every file some location (ST_Loc, a Reference's FileRef …) of the package resolved to, with the location
    #: texts as written (stripped): what the coverage rule's shadow test compares other entries with.
    locations: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    #: Document roots and attachment lists as the reader parsed them, and the limits it parsed them under
    #: (see :meth:`read_only_xml`).
    parsed: Mapping[str, etree._Element] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, compare=False
    )
    parsed_limits: Limits | None = field(default=None, repr=False, compare=False)

    @property
    def doc_info(self) -> DocInfo:
        """DocInfo of the first document (OFD.xml holds one DocBody in practice)."""
        return self.documents[0].doc_info

    @property
    def doc_roots(self) -> tuple[str, ...]:
        return tuple(document.root_path for document in self.documents)

    @property
    def signatures(self) -> tuple[OfdSignature, ...]:
        """Every signature of every document, in document order."""
        return tuple(s for document in self.documents for s in document.signatures)

    def parse_xml(self, path: str, limits: Limits = DEFAULT_LIMITS) -> etree._Element:
        """The root element of the XML file at ``path``, parsed with the safe parser."""
        if path not in self.files:
            raise OfdFormatError(f"{path}: not in the package")
        return parse_xml(self.files[path], path, limits)

    def read_only_xml(self, path: str, limits: Limits = DEFAULT_LIMITS) -> etree._Element:
        """Like :meth:`parse_xml`, but returns the tree the reader already parsed under the same limits when
        there is one (no second parse): the caller must not modify it."""
        if limits == self.parsed_limits and path in self.parsed:
            return self.parsed[path]
        return self.parse_xml(path, limits)


# --- XML ------------------------------------------------------------------------------------------------

_BOMS_UTF16 = (b"\xff\xfe", b"\xfe\xff")


def _declares_doctype(data: bytes) -> bool:
    if b"<!DOCTYPE" in data:
        return True
    if data[:2] in _BOMS_UTF16 or data[:2] in (b"<\x00", b"\x00<"):
        encoding = "utf-16-le" if data[:2] in (b"\xff\xfe", b"<\x00") else "utf-16-be"
        return "<!DOCTYPE" in data.decode(encoding, errors="ignore")
    return False


def parse_xml(data: bytes, path: str, limits: Limits = DEFAULT_LIMITS) -> etree._Element:
    """Parse one package XML file; :class:`OfdFormatError` naming ``path`` when it is refused.

    No DTD is loaded, no entity is resolved, nothing is fetched; a document with a DOCTYPE is refused before
    and (for encodings the byte scan cannot see) after parsing.
    """
    if len(data) > limits.max_xml_size:
        raise OfdFormatError(
            f"{path}: XML file of {len(data)} bytes exceeds the {limits.max_xml_size}-byte limit"
        )
    if _declares_doctype(data):
        raise OfdFormatError(
            f"{path}: XML with a DOCTYPE declaration refused (DTDs and entities are not allowed in OFD: "
            "external entities / entity expansion)"
        )
    try:
        root = etree.fromstring(data, _safe_parser())
    except etree.XMLSyntaxError as exc:
        raise OfdFormatError(f"{path}: not well-formed XML: {exc}") from None
    except ValueError as exc:  # e.g. an encoding declaration lxml cannot honour
        raise OfdFormatError(f"{path}: unreadable XML: {exc}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise OfdFormatError(f"{path}: XML with a DOCTYPE declaration refused")
    if _deeper_than(limits.max_xml_depth)(root):
        raise OfdFormatError(f"{path}: XML nested deeper than {limits.max_xml_depth} elements")
    return root


_PARSERS = threading.local()


def _safe_parser() -> etree.XMLParser:
    """This thread's parser (lxml parsers are not shared between threads): no DTD loading, no entity resolution,
    no network, no huge trees. Reused, because building one costs about as much as parsing a small file."""
    parser: etree.XMLParser | None = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            collect_ids=False,
        )
        _PARSERS.parser = parser
    return parser


@lru_cache(maxsize=8)
def _deeper_than(depth: int) -> etree.XPath:
    """An XPath true when some element sits more than ``depth`` levels deep (evaluated in libxml2, one pass)."""
    return etree.XPath("boolean(" + "/*" * (depth + 1) + ")")


_LOCAL_NAMES: dict[str, str] = {}


def local_name(element: etree._Element) -> str:
    """The local name of an element ('' for comments and processing instructions)."""
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    name = _LOCAL_NAMES.get(tag)
    if name is None:
        name = tag.rsplit("}", 1)[-1]
        if len(_LOCAL_NAMES) < 4096:  # bounded: hostile files can invent any number of tags
            _LOCAL_NAMES[tag] = name
    return name


def _children(element: etree._Element, name: str) -> list[etree._Element]:
    """The child elements with local name ``name``, in any namespace or none (matched inside lxml)."""
    return list(element.iterchildren(_any_namespace(name)))


@lru_cache(maxsize=256)
def _any_namespace(name: str) -> str:
    return "{*}" + name


def _child(element: etree._Element, name: str) -> etree._Element | None:
    found = _children(element, name)
    return found[0] if found else None


def _grandchildren(element: etree._Element, child: str, name: str) -> list[etree._Element]:
    """The ``name`` elements inside the first ``child`` of ``element`` (none when it has no such child)."""
    container = _child(element, child)
    return [] if container is None else _children(container, name)


def _text(element: etree._Element | None) -> str | None:
    if element is None:
        return None
    # With children (comments included) their text and tails count; without, the element's own text is all.
    text = "".join(element.itertext()) if len(element) else (element.text or "")
    return text.strip() or None


def _attr(element: etree._Element, name: str) -> str | None:
    value = element.get(name)
    return None if value is None else value.strip()


# --- Names and locations --------------------------------------------------------------------------------


def resolve_location(location: str, base_dir: str) -> str:
    """Resolve an ST_Loc: ``/x`` from the package root, ``x`` against ``base_dir`` (the directory of the XML
    file that holds it). Refuses URIs, backslashes, NUL bytes, and locations that climb out of the package."""
    if len(location) + len(base_dir) <= _MEMO_LOCATION_LENGTH:
        return _resolve_location_memo(location, base_dir)  # the same few locations recur in every file
    return _resolve_location(location, base_dir)


#: Locations (with their base) up to this length are memoised; longer ones, which only odd or hostile files
#: carry, are resolved afresh so that the memo stays small.
_MEMO_LOCATION_LENGTH = 256


def _resolve_location(location: str, base_dir: str) -> str:
    loc = location.strip()
    if not loc:
        raise OfdFormatError("empty location")
    if "\0" in loc or "\\" in loc:
        raise OfdFormatError(f"location {loc!r} contains a NUL byte or a backslash")
    if _URI_SCHEME.match(loc):
        raise OfdFormatError(f"location {loc!r} is a URI, not a package path")
    joined = loc if loc.startswith("/") else f"{base_dir}/{loc}"
    parts: list[str] = []
    for segment in joined.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not parts:
                raise OfdFormatError(f"location {loc!r} points outside the package")
            parts.pop()
        else:
            parts.append(segment)
    if not parts:
        raise OfdFormatError(f"location {loc!r} names the package root, not a file")
    return "/".join(parts)


_resolve_location_memo = lru_cache(maxsize=4096)(_resolve_location)  # errors are raised again, not memoised


# --- The reader -----------------------------------------------------------------------------------------


#: Parsed trees the package keeps for :meth:`OfdPackage.read_only_xml` (what a copy's check reads again), and
#: the most XML source they may come from: the other trees are dropped as the walk goes, as before.
_KEPT_ROLES = frozenset({"document root", "attachment list"})
_MAX_KEPT_XML = 4 * MiB


class OfdReader:
    """Reads one package; use :meth:`open`."""

    def __init__(self, data: bytes, limits: Limits) -> None:
        self._data = data
        self._limits = limits
        self._files: dict[str, bytes] = {}
        self._warnings: list[str] = []
        self._errors: list[str] = []
        self._content: dict[str, str] = {}
        self._locations: dict[str, set[str]] = {}
        self._lower: dict[str, list[str]] = {}
        self._walked: set[str] = set()
        self._signature_paths: dict[str, str] = {}
        self._parsed: dict[str, etree._Element] = {}
        self._kept_xml = 0
        self._suppressed = 0

    @classmethod
    def open(cls, data: bytes, *, limits: Limits = DEFAULT_LIMITS) -> OfdPackage:
        """Read ``data`` as an OFD package; :class:`OfdFormatError` (or :class:`NotOfdError`) when refused."""
        return cls(bytes(data), limits)._read()

    # -- container ---------------------------------------------------------------------------------------

    def _read(self) -> OfdPackage:
        limits = self._limits
        if len(self._data) > limits.max_file_size:
            raise OfdFormatError(
                f"file of {len(self._data)} bytes exceeds the {limits.max_file_size}-byte limit"
            )
        entries = read_container(self._data, limits)
        if not any(entry.name == OFD_XML for entry in entries) and not any(
            fold_name(entry.name) == OFD_XML.lower() for entry in entries
        ):
            raise NotOfdError("a ZIP archive without OFD.xml at its root: not an OFD package")
        for entry in entries:
            content = inflate(self._data, entry)  # directories too: their CRC and (empty) stream are checked
            if not entry.is_directory:
                self._files[entry.name] = content
        if OFD_XML not in self._files:
            raise OfdFormatError("no OFD.xml at the package root (only a name that differs in case)")
        for name in self._files:
            self._lower.setdefault(name.lower(), []).append(name)
        documents = self._read_documents()
        if self._suppressed:
            self._warnings.append(f"{self._suppressed} further warning(s) not listed")
        return OfdPackage(
            files=MappingProxyType(self._files),
            documents=documents,
            content_files=MappingProxyType(self._content),
            locations=MappingProxyType({path: frozenset(texts) for path, texts in self._locations.items()}),
            errors=tuple(self._errors),
            warnings=tuple(self._warnings),
            parsed=MappingProxyType(self._parsed),
            parsed_limits=self._limits,
        )

    # -- locations ---------------------------------------------------------------------------------------

    def _locate(self, location: str, base_dir: str, where: str) -> tuple[str | None, str | None]:
        """(package path, None) for an existing file; (None, problem) otherwise, the problem without ``where``.
        Vendor quirks (root-relative, case) resolve with a warning that names ``where``."""
        try:
            path = resolve_location(location, base_dir)
        except OfdFormatError as exc:
            return None, str(exc)
        if path in self._files:
            self._locations.setdefault(path, set()).add(location.strip())
            return path, None
        if not location.strip().startswith("/") and base_dir:
            from_root = resolve_location(location, "")
            if from_root in self._files:
                self._warn(
                    f"{where}: {location.strip()!r} is not at {path!r}; read from the package root as "
                    f"{from_root!r}",
                )
                self._locations.setdefault(from_root, set()).add(location.strip())
                return from_root, None
        matches = self._lower.get(path.lower(), [])
        if len(matches) == 1:
            self._warn(
                f"{where}: {location.strip()!r} resolves to {path!r}, which exists only as {matches[0]!r} "
                "(case differs)",
            )
            self._locations.setdefault(matches[0], set()).add(location.strip())
            return matches[0], None
        return None, f"{location.strip()!r} ({path}) is not in the package"

    def _xml(self, path: str) -> etree._Element:
        data = self._files[path]
        root = parse_xml(data, path, self._limits)
        if self._content.get(path) in _KEPT_ROLES and self._kept_xml + len(data) <= _MAX_KEPT_XML:
            self._parsed[path] = root  # for OfdPackage.read_only_xml
            self._kept_xml += len(data)
        return root

    def _warn(self, message: str) -> None:
        """Keep a warning, up to :attr:`Limits.max_warnings` of them (errors are always kept)."""
        if len(self._warnings) < self._limits.max_warnings:
            self._warnings.append(message)
        else:
            self._suppressed += 1

    # -- OFD.xml -----------------------------------------------------------------------------------------

    def _read_documents(self) -> tuple[OfdDocument, ...]:
        root = self._xml(OFD_XML)
        if local_name(root) != "OFD":
            raise OfdFormatError(f"OFD.xml: root element is <{local_name(root)}>, expected <OFD>")
        bodies = _children(root, "DocBody")
        if not bodies:
            raise OfdFormatError("OFD.xml: no DocBody element")
        self._content[OFD_XML] = "package entry point"
        documents = []
        for index, body in enumerate(bodies):
            where = f"OFD.xml DocBody[{index}]"
            doc_root = _text(_child(body, "DocRoot"))
            if doc_root is None:
                raise OfdFormatError(f"{where}: no DocRoot")
            root_path, problem = self._locate(doc_root, "", f"{where} DocRoot")
            if root_path is None:
                raise OfdFormatError(f"{where} DocRoot: {problem}")
            self._content.setdefault(root_path, "document root")
            document_xml = self._xml(root_path)
            if local_name(document_xml) != "Document":
                raise OfdFormatError(
                    f"{root_path}: root element is <{local_name(document_xml)}>, expected <Document>"
                )
            self._walk_document(root_path, document_xml)
            for version in _grandchildren(body, "Versions", "Version"):
                location = _attr(version, "BaseLoc")
                if location:
                    self._content_file(location, "", f"{where} Version", "document version")
            signatures_loc = _text(_child(body, "Signatures"))
            signatures_path = None
            signatures: tuple[OfdSignature, ...] = ()
            if signatures_loc is not None:
                signatures_path, problem = self._locate(signatures_loc, "", f"{where} Signatures")
                if signatures_path is None:
                    raise OfdFormatError(f"{where} Signatures: {problem}")
                signatures = self._read_signatures(index, signatures_path)
            documents.append(
                OfdDocument(
                    index=index,
                    doc_info=self._doc_info(_child(body, "DocInfo"), where),
                    root_path=root_path,
                    signatures_path=signatures_path,
                    signatures=signatures,
                )
            )
        return tuple(documents)

    def _doc_info(self, element: etree._Element | None, where: str) -> DocInfo:
        if element is None:
            self._warn(f"{where}: no DocInfo")
            return DocInfo(doc_id=None)
        custom: dict[str, str] = {}
        for item in _grandchildren(element, "CustomDatas", "CustomData"):
            name = _attr(item, "Name")
            if not name:
                self._warn(f"{where} DocInfo: CustomData without a Name ignored")
                continue
            if name in custom:
                self._warn(f"{where} DocInfo: CustomData {name!r} repeated; the first is used")
                continue
            custom[name] = _text(item) or ""
        return DocInfo(
            doc_id=_text(_child(element, "DocID")),
            title=_text(_child(element, "Title")),
            author=_text(_child(element, "Author")),
            creator=_text(_child(element, "Creator")),
            creator_version=_text(_child(element, "CreatorVersion")),
            creation_date=_text(_child(element, "CreationDate")),
            custom_datas=MappingProxyType(custom),
        )

    # -- document structure (what a reader displays or interprets) -----------------------------------

    def _content_file(self, location: str, base_dir: str, where: str, role: str) -> str | None:
        path, problem = self._locate(location, base_dir, where)
        if path is None:
            self._warn(f"{where}: {problem}")
            return None
        self._content.setdefault(path, role)
        return path

    def _content_xml(
        self, location: str, base_dir: str, where: str, role: str
    ) -> tuple[str, etree._Element] | None:
        path = self._content_file(location, base_dir, where, role)
        if path is None or path in self._walked:
            return None
        self._walked.add(path)
        try:
            return path, self._xml(path)
        except OfdFormatError as exc:
            self._errors.append(str(exc))
            return None

    def _walk_document(self, document_path: str, document: etree._Element) -> None:
        base = posixpath.dirname(document_path)
        common = _child(document, "CommonData")
        if common is not None:
            for kind in ("PublicRes", "DocumentRes"):
                for element in _children(common, kind):
                    if (location := _text(element)) is not None:
                        self._walk_resources(location, base, f"{document_path} {kind}")
            for template in _children(common, "TemplatePage"):
                if (location := _attr(template, "BaseLoc")) is not None:
                    self._walk_page(location, base, f"{document_path} TemplatePage", "template page")
        for page in _grandchildren(document, "Pages", "Page"):
            if (location := _attr(page, "BaseLoc")) is not None:
                self._walk_page(location, base, f"{document_path} Page {page.get('ID')}", "page content")
        lists = {
            "Annotations": ("annotation list", "Page", "FileLoc", "page annotations"),
            "Attachments": ("attachment list", "Attachment", "FileLoc", "attachment"),
            "CustomTags": ("custom tag list", "CustomTag", "FileLoc", "custom tag file"),
            "Extensions": ("extension list", "Extension", "ExtendData", "extension data"),
        }
        for kind, (list_role, item_name, loc_name, item_role) in lists.items():
            for element in _children(document, kind):
                location = _text(element)
                if location is None:
                    continue
                found = self._content_xml(location, base, f"{document_path} {kind}", list_role)
                if found is None:
                    continue
                list_path, list_root = found
                list_base = posixpath.dirname(list_path)
                for item in _children(list_root, item_name):
                    for loc_element in _children(item, loc_name):
                        if (item_loc := _text(loc_element)) is not None:
                            self._content_file(item_loc, list_base, f"{list_path} {loc_name}", item_role)
                    if kind == "CustomTags" and (schema := _text(_child(item, "SchemaLoc"))) is not None:
                        self._content_file(schema, list_base, f"{list_path} SchemaLoc", "custom tag schema")

    def _walk_page(self, location: str, base: str, where: str, role: str) -> None:
        found = self._content_xml(location, base, where, role)
        if found is None:
            return
        path, page = found
        for element in _children(page, "PageRes"):
            if (res := _text(element)) is not None:
                self._walk_resources(res, posixpath.dirname(path), f"{path} PageRes")

    def _walk_resources(self, location: str, base: str, where: str) -> None:
        found = self._content_xml(location, base, where, "resource list")
        if found is None:
            return
        path, res = found
        res_base = posixpath.dirname(path)
        if (res_loc := _attr(res, "BaseLoc")) is not None:
            try:
                res_base = resolve_location(res_loc, res_base)
            except OfdFormatError as exc:
                self._errors.append(f"{path} Res BaseLoc: {exc}")
                return
        for element in res.iter():
            name = local_name(element)
            if name in ("FontFile", "MediaFile") and (file_loc := _text(element)) is not None:
                role = "font" if name == "FontFile" else "image or media resource"
                self._content_file(file_loc, res_base, f"{path} {name}", role)
            elif name == "ColorSpace" and (profile := _attr(element, "Profile")) is not None:
                self._content_file(profile, res_base, f"{path} ColorSpace Profile", "colour profile")

    # -- signatures --------------------------------------------------------------------------------------

    def _read_signatures(self, document: int, signatures_path: str) -> tuple[OfdSignature, ...]:
        root = self._xml(signatures_path)
        if local_name(root) != "Signatures":
            raise OfdFormatError(
                f"{signatures_path}: root element is <{local_name(root)}>, expected <Signatures>"
            )
        base = posixpath.dirname(signatures_path)
        found: list[OfdSignature] = []
        ids: set[str] = set()
        elements = _children(root, "Signature")
        if len(elements) > self._limits.max_signatures:
            raise OfdFormatError(
                f"{signatures_path}: {len(elements)} signatures exceed the limit of {self._limits.max_signatures}"
            )
        for number, element in enumerate(elements):
            signature = self._read_signature(document, signatures_path, base, number, element)
            if signature.id in ids:
                self._warn(f"{signatures_path}: signature ID {signature.id!r} is used twice")
            ids.add(signature.id)
            found.append(signature)
        return tuple(found)

    def _read_signature(
        self, document: int, signatures_path: str, base: str, number: int, element: etree._Element
    ) -> OfdSignature:
        errors: list[str] = []
        warnings: list[str] = []
        sig_id = _attr(element, "ID") or ""
        where = (
            f"{signatures_path} Signature {sig_id!r}"
            if sig_id
            else f"{signatures_path} Signature #{number + 1}"
        )
        if not sig_id:
            errors.append(f"{where}: no ID attribute")
            sig_id = f"#{number + 1}"
        declared_type = _attr(element, "Type")
        if declared_type is None:
            sig_type = "Seal"
            warnings.append(f"{where}: Type omitted, which means Seal (GB/T 33190 default)")
        elif declared_type.lower() in ("seal", "sign"):
            sig_type = declared_type.capitalize()
            if declared_type != sig_type:
                warnings.append(f"{where}: Type {declared_type!r} read as {sig_type!r}")
        else:
            sig_type = declared_type
            errors.append(f"{where}: Type {declared_type!r} is neither Seal nor Sign")
        base_loc = _attr(element, "BaseLoc") or ""
        # The fields read so far: one OfdSignature is made at the end, whatever stopped the reading.
        read: dict[str, Any] = {
            "document": document,
            "id": sig_id,
            "type": sig_type,
            "type_declared": declared_type is not None,
            "base_loc": base_loc,
            "path": None,
            "xml": None,
            "signed_info": None,
            "signed_value_loc": None,
            "signed_value_path": None,
            "signed_value": None,
        }
        if not base_loc:
            errors.append(f"{where}: no BaseLoc")
            return _signature(read, errors, warnings)
        if not base_loc.startswith("/"):
            warnings.append(f"{where}: relative BaseLoc {base_loc!r} read against {base or '/'}")
        path, problem = self._locate(base_loc, base, f"{where} BaseLoc")
        if path is None:
            errors.append(f"{where} BaseLoc: {problem}")
            return _signature(read, errors, warnings)
        if path in self._signature_paths:
            errors.append(
                f"{where} BaseLoc: {path} is already the Signature.xml of {self._signature_paths[path]!r}"
            )
            return _signature(read, errors, warnings)
        self._signature_paths[path] = sig_id
        read["path"], read["xml"] = path, self._files[path]
        try:
            root = self._xml(path)
        except OfdFormatError as exc:
            errors.append(str(exc))
            return _signature(read, errors, warnings)
        if local_name(root) != "Signature":
            errors.append(f"{path}: root element is <{local_name(root)}>, expected <Signature>")
            return _signature(read, errors, warnings)
        sig_base = posixpath.dirname(path)
        infos = _children(root, "SignedInfo")
        values = _children(root, "SignedValue")
        if len(infos) != 1:
            errors.append(f"{path}: {len(infos)} SignedInfo elements, expected exactly one")
        if len(values) != 1:
            errors.append(f"{path}: {len(values)} SignedValue elements, expected exactly one")
        names = [local_name(c) for c in root if local_name(c) in ("SignedInfo", "SignedValue")]
        if names == ["SignedValue", "SignedInfo"]:
            warnings.append(
                f"{path}: SignedValue precedes SignedInfo (schema order is SignedInfo, SignedValue)"
            )
        read["signed_info"] = self._signed_info(infos[0], path, sig_base, errors) if len(infos) == 1 else None
        signed_value_loc = read["signed_value_loc"] = _text(values[0]) if len(values) == 1 else None
        if len(values) == 1 and signed_value_loc is None:
            errors.append(f"{path}: SignedValue is empty")
        elif signed_value_loc is not None:
            signed_value_path, problem = self._locate(signed_value_loc, sig_base, f"{path} SignedValue")
            if signed_value_path is None:
                errors.append(f"{path} SignedValue: {problem}")
            else:
                read["signed_value_path"] = signed_value_path
                read["signed_value"] = self._files[signed_value_path]
        return _signature(read, errors, warnings)

    def _signed_info(
        self, element: etree._Element, path: str, base: str, errors: list[str]
    ) -> SignedInfo | None:
        provider_element = _child(element, "Provider")
        provider = None
        if provider_element is not None:
            provider = Provider(
                name=_attr(provider_element, "ProviderName") or "",
                version=_attr(provider_element, "Version"),
                company=_attr(provider_element, "Company"),
            )
        reference_lists = _children(element, "References")
        if len(reference_lists) != 1:
            errors.append(
                f"{path}: {len(reference_lists)} References elements in SignedInfo, expected exactly one"
            )
            return None
        references_element = reference_lists[0]
        items = _children(references_element, "Reference")
        if len(items) > self._limits.max_references:
            errors.append(
                f"{path}: {len(items)} References exceed the limit of {self._limits.max_references}"
            )
            return None
        references: list[Reference] = []
        for number, item in enumerate(items):
            file_ref = _attr(item, "FileRef")
            check_value = _text(_child(item, "CheckValue"))
            if not file_ref:
                errors.append(f"{path}: Reference #{number + 1} has no FileRef")
                continue
            if check_value is None:
                errors.append(f"{path}: Reference to {file_ref!r} has no CheckValue")
                continue
            ref_path, problem = self._locate(file_ref, base, f"{path} Reference")
            references.append(Reference(file_ref, check_value, ref_path, problem))
        seals = _children(element, "Seal")
        seal_loc = _text(_child(seals[0], "BaseLoc")) if seals else None
        seal_path = None
        if seal_loc is not None:
            seal_path, problem = self._locate(seal_loc, base, f"{path} Seal BaseLoc")
            if seal_path is None:
                errors.append(f"{path} Seal BaseLoc: {problem}")
        return SignedInfo(
            provider=provider,
            signature_method=_text(_child(element, "SignatureMethod")),
            signature_date_time=_text(_child(element, "SignatureDateTime")),
            check_method=_attr(references_element, "CheckMethod"),
            references=tuple(references),
            stamp_annots=tuple(
                StampAnnot(
                    id=_attr(annot, "ID"),
                    page_ref=_attr(annot, "PageRef"),
                    boundary=_attr(annot, "Boundary"),
                    clip=_attr(annot, "Clip"),
                )
                for annot in _children(element, "StampAnnot")
            ),
            seal_loc=seal_loc,
            seal_path=seal_path,
        )


def _signature(read: dict[str, Any], errors: list[str], warnings: list[str]) -> OfdSignature:
    """The signature from the fields read (one object, no chain of ``dataclasses.replace``)."""
    return OfdSignature(**read, errors=tuple(errors), warnings=tuple(warnings))
