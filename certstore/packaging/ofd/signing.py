"""Sealing an OFD package (OFD 电子签章, GB/T 33190-2016 §18 with GB/T 38540-2020 seal signatures).

:func:`add_seal` applies an electronic seal (Type="Seal"): it writes, in this order,

1. ``Doc_0/Signs/Sign_N/Seal.esl`` — a copy of the seal (referenced, so it is protected too);
2. ``Doc_0/Signs/Signatures.xml`` — created (and referenced from ``OFD.xml`` ``DocBody/Signatures``) or
   extended with the new ``Signature`` entry, ``MaxSignId`` updated;
3. ``Doc_0/Signs/Sign_N/Signature.xml`` — SignedInfo (Provider, SignatureMethod 1.2.156.10197.1.501,
   SignatureDateTime, References with the base64 SM3 ``CheckValue`` of every protected file, StampAnnot with
   the seal's position, Seal/BaseLoc) and SignedValue;
4. ``Doc_0/Signs/Sign_N/SignedValue.dat`` — the SES_Signature (:func:`certstore.seal.sign_seal`) whose
   dataHash is SM3 of the exact Signature.xml bytes written in step 3 and whose propertyInfo is that file's
   path (``/Doc_0/Signs/Sign_N/Signature.xml``); with a ``timestamper``, its ``timeStamp`` holds an RFC 3161
   token over the signature value (可信时间戳, :mod:`certstore.tsa`).

:func:`add_sign` does the same for a plain digital signature (Type="Sign", 纯数字签名): no seal, and
SignedValue.dat is a bare DER SM2-with-SM3 signature over the Signature.xml bytes.

Protected files (References) are every file of the package except the new Signature.xml and SignedValue.dat
(which cannot digest themselves) and — in ``protect="continue"`` mode — Signatures.xml.

Several signatures on one file (e.g. the issuing agency's seal, then the repository's):

* ``protect="continue"`` (继续签章): Signatures.xml is not referenced (GB/T 33190: when further signatures are
  allowed, Signatures.xml is left out), so a later signature, which has to add itself to that list, keeps
  this one valid. Every later signature references this one's Signature.xml, SignedValue.dat and Seal.esl.
* ``protect="all"`` (完整保护): Signatures.xml is referenced as well; the document is closed. Any later
  signature would change Signatures.xml and break this one, so :func:`add_seal` / :func:`add_sign` refuse to
  add anything after an ``"all"`` signature (:class:`OfdSigningError`) — the situation of a third-party
  file where the first seal fails only on Signatures.xml.

So: every signature but the last in ``"continue"`` mode; the last may be ``"all"``. No file another signature
has digested is ever rewritten: OFD.xml is only changed when the package has no signatures yet, and
Signatures.xml only when no signature references it.
"""

from __future__ import annotations

import base64
import math
import posixpath
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Literal

from lxml import etree

from certstore.crypto.sm2 import Signer
from certstore.crypto.sm3 import sm3
from certstore.crypto.x509 import Certificate
from certstore.packaging.layout import Box
from certstore.seal import sign_seal
from certstore.seal.build import stamp_signature
from certstore.tsa import TimeStamper

from . import names as n
from .writer import read_package, serialize_xml, write_package

__all__ = ["OfdSigningError", "Protect", "add_seal", "add_sign"]

Protect = Literal["all", "continue"]

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
_TRAILING_NUMBER = re.compile(r"(\d+)\s*$")
#: Tolerance (mm) when checking that a stamp lies on its page.
_EPSILON = 1e-6


class OfdSigningError(ValueError):
    """The package cannot be signed as asked (not an OFD we can extend, page missing, closed by an earlier
    signature, stamp off the page, signer certificate unusable)."""


# --- reading the package ------------------------------------------------------------------------------------


def _parse(files: dict[str, bytes], path: str) -> etree._Element:
    if path not in files:
        raise OfdSigningError(f"the package has no {path}")
    try:
        return etree.fromstring(files[path], _PARSER)
    except etree.XMLSyntaxError as exc:
        raise OfdSigningError(f"{path} is not well-formed XML: {exc}") from exc


def _child(parent: etree._Element, name: str) -> etree._Element | None:
    return parent.find(n.q(name))


def _text(parent: etree._Element, name: str) -> str | None:
    element = _child(parent, name)
    return None if element is None or element.text is None else element.text.strip()


def _resolve(base_dir: str, location: str, what: str) -> str:
    """The package path of an ST_Loc: absolute from the root, else relative to ``base_dir``."""
    location = location.strip()
    joined = location.lstrip("/") if location.startswith("/") else posixpath.join(base_dir, location)
    path = posixpath.normpath(joined) if joined else ""
    if not path or path == "." or path.startswith("../") or path == "..":
        raise OfdSigningError(f"{what} {location!r} does not name a file inside the package")
    return path


def _box_values(text: str | None, what: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in (text or "").split())
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise OfdSigningError(f"{what} {text!r} is not a box 'x y w h'")
    return values  # type: ignore[return-value]


def _id_number(value: str | None) -> int:
    match = _TRAILING_NUMBER.search(value or "")
    return int(match.group(1)) if match else 0


class _Package:
    """The parts of an OFD package signing needs: document, pages, existing signatures."""

    def __init__(self, data: bytes | Mapping[str, bytes]) -> None:
        if isinstance(
            data, Mapping
        ):  # unzipped files (straight from the writer): signed without a round trip
            self.files = dict(data)
        else:
            try:
                self.files = read_package(data)
            except ValueError as exc:
                raise OfdSigningError(str(exc)) from exc
        self.ofd = _parse(self.files, n.OFD_XML)
        if self.ofd.tag != n.q(n.OFD):
            raise OfdSigningError(f"OFD.xml has root {self.ofd.tag!r}, not ofd:OFD in {n.OFD_NS}")
        body = _child(self.ofd, n.DOC_BODY)
        if body is None:
            raise OfdSigningError("OFD.xml has no DocBody")
        self.doc_body = body
        doc_root = _text(body, n.DOC_ROOT)
        if not doc_root:
            raise OfdSigningError("OFD.xml DocBody has no DocRoot")
        self.document_path = _resolve("", doc_root, "DocRoot")
        self.doc_dir = posixpath.dirname(self.document_path)
        self.document = _parse(self.files, self.document_path)
        signatures = _text(body, n.SIGNATURES)
        self.signatures_path = _resolve("", signatures, "Signatures") if signatures else None
        self.signatures: etree._Element | None = None
        if self.signatures_path is not None:
            self.signatures = _parse(self.files, self.signatures_path)

    def page(self, index: int) -> tuple[int, tuple[float, float, float, float]]:
        """(ID, PhysicalBox) of page ``index`` (0-based)."""
        pages = _child(self.document, n.PAGES)
        entries = [] if pages is None else pages.findall(n.q(n.PAGE))
        if not 0 <= index < len(entries):
            raise OfdSigningError(
                f"stamp page {index} does not exist (the document has {len(entries)} pages)"
            )
        entry = entries[index]
        page_id = entry.get("ID", "")
        if not page_id.isdigit():
            raise OfdSigningError(f"page {index} has no usable ID ({page_id!r})")
        area = self.document.find(f"{n.q(n.COMMON_DATA)}/{n.q(n.PAGE_AREA)}/{n.q(n.PHYSICAL_BOX)}")
        box_text = None if area is None else area.text
        base = entry.get("BaseLoc")
        if base:
            content_path = _resolve(self.doc_dir, base, f"page {index} BaseLoc")
            if content_path in self.files:
                own = _parse(self.files, content_path).find(f"{n.q('Area')}/{n.q(n.PHYSICAL_BOX)}")
                if own is not None and own.text:
                    box_text = own.text
        return int(page_id), _box_values(box_text, f"page {index} PhysicalBox")

    def existing_signatures(self) -> list[tuple[str, etree._Element]]:
        """(path, parsed Signature.xml) of every signature listed in Signatures.xml."""
        if self.signatures is None or self.signatures_path is None:
            return []
        base_dir = posixpath.dirname(self.signatures_path)
        found = []
        for entry in self.signatures.findall(n.q(n.SIGNATURE)):
            location = entry.get(n.BASE_LOC)
            if not location:
                raise OfdSigningError(f"a Signature in {self.signatures_path} has no BaseLoc")
            path = _resolve(base_dir, location, "Signature BaseLoc")
            found.append((path, _parse(self.files, path)))
        return found


# --- writing ------------------------------------------------------------------------------------------------


def _element(parent: etree._Element, name: str, text: str | None = None, **attrs: str) -> etree._Element:
    child = etree.SubElement(parent, n.q(name), attrs)
    if text is not None:
        child.text = text
    return child


def _signing_time(signing_time: datetime | None) -> datetime:
    when = signing_time if signing_time is not None else datetime.now(UTC)
    if when.tzinfo is None:
        raise OfdSigningError("signing_time must be a timezone-aware datetime")
    return when.astimezone(UTC).replace(microsecond=0)


def _check_signer(signer: Signer, certificate: Certificate, when: datetime) -> None:
    if signer.public_key != certificate.public_key:
        raise OfdSigningError(f"the signer does not hold the key of {certificate.subject!r}")
    if not certificate.valid_at(when):
        raise OfdSigningError(
            f"signer certificate {certificate.subject!r} is not valid at {when.isoformat()} "
            f"({certificate.not_before.isoformat()} … {certificate.not_after.isoformat()})"
        )


def _check_stamp(stamp_box: Box, page_box: tuple[float, float, float, float], page: int) -> None:
    values = (stamp_box.x, stamp_box.y, stamp_box.w, stamp_box.h)
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
        raise OfdSigningError(f"stamp box {stamp_box} must be finite numbers")
    if stamp_box.w <= 0 or stamp_box.h <= 0:
        raise OfdSigningError(f"stamp box {stamp_box} needs a positive width and height")
    px, py, pw, ph = page_box
    if (
        stamp_box.x < px - _EPSILON
        or stamp_box.y < py - _EPSILON
        or stamp_box.x + stamp_box.w > px + pw + _EPSILON
        or stamp_box.y + stamp_box.h > py + ph + _EPSILON
    ):
        raise OfdSigningError(
            f"stamp box {stamp_box} lies outside page {page} ({' '.join(map(str, page_box))})"
        )


#: SM3 digests of large files that recur from package to package as the very same bytes object (a type's base
#: image, a seal): (the object, its digest) by id, checked by identity, so a digest is never taken from other bytes.
_DIGESTS: dict[int, tuple[bytes, bytes]] = {}
_DIGEST_MIN = 16 * 1024
_DIGESTS_MAX = 64


def _file_digest(data: bytes) -> bytes:
    if len(data) < _DIGEST_MIN:
        return sm3(data)
    hit = _DIGESTS.get(id(data))
    if hit is not None and hit[0] is data:
        return hit[1]
    digest = sm3(data)
    if len(_DIGESTS) >= _DIGESTS_MAX:
        _DIGESTS.clear()
    _DIGESTS[id(data)] = (data, digest)
    return digest


def _add_signature(
    ofd: bytes | Mapping[str, bytes],
    *,
    kind: str,
    seal: bytes | None,
    stamp_page: int,
    stamp_box: Box | None,
    when: datetime,
    protect: Protect,
    signed_value: Callable[[bytes, str], bytes],
) -> bytes:
    if protect not in ("all", "continue"):
        raise OfdSigningError(f"protect must be 'all' or 'continue', not {protect!r}")
    package = _Package(ofd)
    files = package.files
    page_id = None
    if stamp_box is not None:
        page_id, page_box = package.page(stamp_page)
        _check_stamp(stamp_box, page_box, stamp_page)

    # Earlier signatures: refuse when one protects Signatures.xml (adding to the list would break it).
    existing = package.existing_signatures()
    used_ids = [0]
    for path, signature in existing:
        base_dir = posixpath.dirname(path)
        for reference in signature.iter(n.q(n.REFERENCE)):
            ref = reference.get("FileRef")
            if (
                ref
                and package.signatures_path
                and _resolve(base_dir, ref, "FileRef") == package.signatures_path
            ):
                raise OfdSigningError(
                    f"the signature in {path} protects {package.signatures_path} (protect='all'); adding "
                    "another signature would invalidate it"
                )
        used_ids.extend(_id_number(s.get("ID")) for s in signature.iter(n.q(n.STAMP_ANNOT)))

    # Where the new signature goes.
    if package.signatures_path is None:
        signatures_path = posixpath.join(package.doc_dir, n.SIGNS_DIR_NAME, n.SIGNATURES_FILE_NAME)
        signatures = etree.Element(n.q(n.SIGNATURES), nsmap=n.NSMAP)
    else:
        signatures_path = package.signatures_path
        assert package.signatures is not None
        signatures = package.signatures
        if signatures.tag != n.q(n.SIGNATURES):
            raise OfdSigningError(f"{signatures_path} has root {signatures.tag!r}, not ofd:Signatures")
    signs_dir = posixpath.dirname(signatures_path)
    index = 0
    while any(name.startswith(f"{n.sign_dir(signs_dir, index)}/") for name in files):
        index += 1
    directory = n.sign_dir(signs_dir, index)
    seal_path = f"{directory}/{n.SEAL_FILE_NAME}"
    signature_path = f"{directory}/{n.SIGNATURE_FILE_NAME}"
    value_path = f"{directory}/{n.SIGNED_VALUE_FILE_NAME}"

    used_ids.extend(_id_number(e.text) for e in signatures.findall(n.q(n.MAX_SIGN_ID)))
    used_ids.extend(_id_number(e.get("ID")) for e in signatures.findall(n.q(n.SIGNATURE)))
    next_id = max(used_ids) + 1
    signature_id = f"s{next_id:03d}"
    stamp_id = f"s{next_id + 1:03d}" if stamp_box is not None else None
    max_sign_id = stamp_id or signature_id

    # 1. the seal copy, written first so it is referenced
    if seal is not None:
        files[seal_path] = seal

    # 2. Signatures.xml (MaxSignId first, as the schema orders it) and, for the first signature, OFD.xml
    for old in signatures.findall(n.q(n.MAX_SIGN_ID)):
        signatures.remove(old)
    max_element = etree.Element(n.q(n.MAX_SIGN_ID))
    max_element.text = max_sign_id
    signatures.insert(0, max_element)
    _element(signatures, n.SIGNATURE, ID=signature_id, Type=kind, BaseLoc=n.loc(signature_path))
    files[signatures_path] = serialize_xml(signatures)
    if package.signatures_path is None:
        _element(package.doc_body, n.SIGNATURES, n.loc(signatures_path))
        files[n.OFD_XML] = serialize_xml(package.ofd)

    # 3. Signature.xml over the package as it now stands
    protected = [
        name for name in files if name not in (signature_path, value_path) and not (
            protect == "continue" and name == signatures_path
        )
    ]  # fmt: skip
    root = etree.Element(n.q(n.SIGNATURE), nsmap=n.NSMAP)
    info = _element(root, n.SIGNED_INFO)
    _element(
        info,
        n.PROVIDER,
        ProviderName=n.PROVIDER_NAME,
        Version=n.creator_version(),
        Company=n.PROVIDER_COMPANY,
    )
    _element(info, n.SIGNATURE_METHOD, n.SIGNATURE_METHOD_SM2_SM3)
    _element(info, n.SIGNATURE_DATE_TIME, when.strftime("%Y%m%d%H%M%SZ"))
    references = _element(info, n.REFERENCES, CheckMethod=n.CHECK_METHOD_SM3)
    for name in protected:
        reference = _element(references, n.REFERENCE, FileRef=n.loc(name))
        _element(reference, n.CHECK_VALUE, base64.b64encode(_file_digest(files[name])).decode("ascii"))
    if stamp_box is not None and stamp_id is not None:
        _element(info, n.STAMP_ANNOT, ID=stamp_id, PageRef=str(page_id), Boundary=stamp_box.as_ofd())
    if seal is not None:
        seal_element = _element(info, n.SEAL)
        _element(seal_element, n.BASE_LOC, n.loc(seal_path))
    _element(root, n.SIGNED_VALUE, n.loc(value_path))
    signature_xml = serialize_xml(root)
    files[signature_path] = signature_xml

    # 4. SignedValue.dat over exactly those bytes
    files[value_path] = signed_value(signature_xml, n.loc(signature_path))
    # the signature list before the new signature's folder, as the package is read
    order = [name for name in files if name not in (seal_path, signature_path, value_path)]
    order += [name for name in (seal_path, signature_path, value_path) if name in files]
    return write_package((name, files[name]) for name in order)


def add_seal(
    ofd: bytes | Mapping[str, bytes],
    *,
    seal: bytes,
    signer: Signer,
    signer_certificate: Certificate,
    stamp_page: int = 0,
    stamp_box: Box,
    signing_time: datetime | None = None,
    protect: Protect = "all",
    timestamper: TimeStamper | None = None,
) -> bytes:
    """Apply the electronic seal ``seal`` (DER SESeal, GB/T 38540) to ``ofd`` — a package, or the files of one
    (:func:`~certstore.packaging.ofd.writer.build_ofd_files`); returns the sealed package.

    The seal picture is placed at ``stamp_box`` (mm, top-left origin) on page ``stamp_page`` (0-based;
    the StampAnnot's PageRef is that page's ID). ``signing_time`` (default: now) becomes both
    SignatureDateTime and the SES_Signature's timeInfo. See the module docstring for ``protect``: use
    ``"continue"`` for every seal that another may follow, ``"all"`` for the last.

    ``timestamper`` (:class:`certstore.tsa.TimeStamper`), when given, puts a time-stamp token over the
    signature value in the SES_Signature's ``timeStamp`` (可信时间戳, GB/T 38540 §7.2 b) 5)): the trusted
    time; SignatureDateTime and timeInfo stay ``signing_time``. Its
    :class:`~certstore.tsa.TimeStampError` goes to the caller — no seal is made without the token asked for.

    Raises :class:`OfdSigningError` for a package or stamp position that cannot be signed, and
    :class:`certstore.seal.SigningRefusedError` when the seal may not be applied (signer not listed in the
    seal, seal or certificate not valid at the signing time, seal damaged).
    """
    when = _signing_time(signing_time)

    def seal_signature(data: bytes, property_info: str) -> bytes:
        signature = sign_seal(
            seal=seal,
            signer=signer,
            signer_certificate=signer_certificate,
            data=data,
            property_info=property_info,
            signing_time=when,
        )
        return signature if timestamper is None else stamp_signature(signature, timestamper.stamp)

    return _add_signature(
        ofd,
        kind=n.TYPE_SEAL,
        seal=seal,
        stamp_page=stamp_page,
        stamp_box=stamp_box,
        when=when,
        protect=protect,
        signed_value=seal_signature,
    )


def add_sign(
    ofd: bytes,
    *,
    signer: Signer,
    signer_certificate: Certificate,
    stamp_page: int = 0,
    stamp_box: Box | None = None,
    signing_time: datetime | None = None,
    protect: Protect = "all",
) -> bytes:
    """Add a plain digital signature (Type="Sign") to ``ofd``; returns the signed package.

    SignedValue.dat is the DER SM2-with-SM3 signature (default user ID) over the exact Signature.xml bytes,
    without certificate — a verifier must be given ``signer_certificate``, which is only checked here (key
    match, validity at ``signing_time``). ``stamp_box``, when given, adds a StampAnnot (a signature field
    position without a seal picture). ``protect`` as for :func:`add_seal`.
    """
    when = _signing_time(signing_time)
    _check_signer(signer, signer_certificate, when)
    return _add_signature(
        ofd,
        kind=n.TYPE_SIGN,
        seal=None,
        stamp_page=stamp_page,
        stamp_box=stamp_box,
        when=when,
        protect=protect,
        signed_value=lambda data, _path: signer.sign(data),
    )
