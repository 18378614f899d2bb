"""Copies (副本 / 加注件) of certificates for using units (应用单位): a new OFD document, sealed by the repository
(电子证照库), that shows the certificate's face with a watermark and embeds the issuer-sealed original.

Sharing service rule: window staff of a using unit download a copy of a holder's certificate. The stored,
issuer-sealed OFD (the original, 原件) is never changed. :func:`make_copy` builds a new document instead:

* **the face**, laid out again from the stored certificate data exactly as the original was
  (:func:`certstore.packaging.face.lay_out_face` with the catalogue version the certificate was issued under,
  built with :func:`certstore.packaging.ofd.build_ofd` as :func:`certstore.services.issuance.make_ofd` does).
  Before anything is made, that face is compared with the original's files (page content, resources, tags,
  metadata; fonts by their advances, which the page content pins, images by their pixels): a face that cannot
  be reproduced — another ``verify_base_url`` (the QR code), another catalogue layout or face font — is refused
  (:class:`CopyUnavailableError`) rather than shown as the certificate;
* **the issuer's seal picture**, taken from the seal signatures of the original (so it is the seal that actually
  sealed it) and drawn as an ordinary image where the original shows it (its StampAnnot, the layout's
  ``seal_box``) — a picture, not a signature: the issuer's signature is the one inside the embedded original;
* **a watermark** on every page (:func:`certstore.packaging.ofd.add_watermark`, an annotation of type
  ``Watermark``, added while the new document is still unsigned) naming the purpose (用途), the using unit, the
  matter (事项/办件编号) and the time the copy was made in China Standard Time — headed by the certificate's
  status when it is not valid at that time (``证照已吊销 · 非有效证照`` …), so a copy never passes for a valid
  certificate;
* **the original** as an attachment (``Doc_0/Attachs/original.ofd``, Name 原件, ``Format="ofd"``,
  ``Usage="original"``: :data:`certstore.verify.ofd.ORIGINAL_ATTACHMENT_USAGE`), byte for byte as stored, so
  anyone can verify the issuer's own seal; the verifier does (check ``embedded_original``);
* **the certificate metadata** as in originals (OFD.xml CustomData, ``ZZBS`` included, and the ``metadata.xml``
  attachment), and the copy's parameters as CustomData ``FB_*`` (:data:`COPY_FIELDS`) and as the watermark
  annotation's Parameters;
* **the repository's seal** (:func:`repository_sealing_key`, 电子证照库副本专用章) near the bottom right of page 1,
  clear of the issuer's seal picture, protecting every file including the signature list (``protect="all"``):
  the copy is closed, nothing can be added without breaking the repository's seal.

The repository certifies only copies of originals that verify: the stored file is verified offline first
(:func:`certstore.verify.verify_and_read` with the given trust store; the package it reads is the one the copy
is made from) and a file that is not VALID is refused. The OFD work itself — CustomData, the seal pictures of
page 1, the stamp's place, the comparison of the face — is :mod:`certstore.packaging.ofd.edit`'s.

The copy's bytes follow from the stored file, the request and ``at`` — except the seal's SM2 signature value,
which is randomised like every SM2 signature.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime

from certstore.checks import CheckResult, Indication
from certstore.crypto.sm3 import sm3_hex
from certstore.crypto.trust import TrustStore
from certstore.keystore import REPOSITORY_SEAL_NAME, REPOSITORY_SIGNER_NAME, KeyStore, KeyStoreError
from certstore.lifecycle import Status
from certstore.packaging.layout import Box, FaceData, FaceLayout
from certstore.packaging.ofd import (
    Attachment,
    OfdAnnotationError,
    OfdBuildError,
    add_seal,
    add_watermark,
    build_ofd,
)
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
from certstore.packaging.ofd.reader import OfdFormatError, OfdPackage
from certstore.records import Certificate
from certstore.seal import parse_seal
from certstore.services import certificates
from certstore.services.catalogue import get_entry
from certstore.services.issuance import DEFAULT_VERIFY_BASE_URL, OFD_MEDIA_TYPE, SealingKey, sealing_key
from certstore.store.repository import Repository
from certstore.timezones import CHINA_STANDARD_TIME
from certstore.verify import VerificationReport, verify_and_read
from certstore.verify.ofd import ORIGINAL_ATTACHMENT_FORMAT, ORIGINAL_ATTACHMENT_USAGE

__all__ = [
    "COPY_FIELDS",
    "ORIGINAL_FILE_NAME",
    "CopyRequest",
    "CopyUnavailableError",
    "make_copy",
    "repository_sealing_key",
]

#: The embedded original's file name in ``Doc_0/Attachs/`` and its Attachment/@Name.
ORIGINAL_FILE_NAME = "original.ofd"
ORIGINAL_TITLE = "原件"
#: Layout role of the issuer's seal picture drawn on a copy's face (``build_ofd`` skips role ``seal``).
SEAL_PICTURE_ROLE = "issuer_seal_picture"
#: OFD.xml CustomData names of a copy's parameters (副本 = FB), in the order written.
COPY_FIELDS = {
    "FB_YYDW": "using unit (应用单位)",
    "FB_SXBH": "matter (事项/办件编号)",
    "FB_YT": "purpose (用途)",
    "FB_SQR": "requested by (申请人)",
    "FB_SCSJ": "made at, China Standard Time (生成时间)",
    "FB_ZZZT": "certificate status at that time (证照状态)",
    "FB_YJSM3": "SM3 of the embedded original (原件摘要)",
}

#: Longest accepted request fields (characters), so every watermark line fits a tile.
_MAX_LENGTHS = {"using_unit": 60, "matter": 40, "purpose": 40, "requested_by": 64}
#: Stamp size when the seal's picture gives none.
_DEFAULT_STAMP_MM = 40.0


class CopyUnavailableError(ValueError):
    """No copy can be made of this certificate: it has no file, its file is not an OFD, the stored file does not
    verify, its face cannot be reproduced exactly, or page 1 has no room for the repository's stamp."""


@dataclass(frozen=True)
class CopyRequest:
    """A using unit's (应用单位) request for a copy (副本).

    ``using_unit``: the unit's name, printed; ``matter``: the matter or case number (事项/办件编号), printed;
    ``purpose``: what the copy may be used for (用途), printed as 仅供{purpose}使用; ``requested_by``: the member
    of staff asking, recorded in the copy (CustomData ``FB_SQR`` and the watermark's parameters; not printed).
    """

    using_unit: str
    matter: str
    purpose: str
    requested_by: str

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"copy request: {field.name} must be a non-empty string")
            if value != value.strip():
                object.__setattr__(self, field.name, value.strip())
                value = value.strip()
            bad = next((ch for ch in value if unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn")), None)
            if bad is not None:
                raise ValueError(f"copy request: {field.name} contains U+{ord(bad):04X}")
            if len(value) > _MAX_LENGTHS[field.name]:
                raise ValueError(
                    f"copy request: {field.name} is longer than {_MAX_LENGTHS[field.name]} characters"
                )


def repository_sealing_key(store: KeyStore) -> SealingKey:
    """The repository's sealing key for copies: signer ``repository`` and seal ``repository`` of ``store``.

    Raises :class:`~certstore.keystore.KeyStoreError` saying how to get them when the key store lacks them (one
    made before copies existed)."""
    try:
        return sealing_key(store, signer_name=REPOSITORY_SIGNER_NAME, seal_name=REPOSITORY_SEAL_NAME)
    except KeyStoreError as exc:
        raise KeyStoreError(
            f"the key store {store.root} has no usable repository signer and seal for copies (副本签章): {exc}. "
            "Run 'certstore keys init --force' (development key store: replaces every key) or import a repository "
            f"signer: 'certstore keys import --name {REPOSITORY_SIGNER_NAME} --key … --cert … --chain …', then "
            f"'certstore seal make --signer {REPOSITORY_SIGNER_NAME} --name … --picture … --out repository.esl "
            f"--store-as {REPOSITORY_SEAL_NAME}'"
        ) from exc


# --- the watermark --------------------------------------------------------------------------------------------


def _state(status: Status) -> str:
    """已吊销, 已注销, 已废止, 已挂起, 已变更, 已过期."""
    label = status.label
    return label if label.startswith("已") else f"已{label}"


def _watermark_lines(request: CopyRequest, status: Status, made: datetime) -> list[str]:
    purpose = request.purpose.removesuffix("使用") or request.purpose
    lines = [
        f"副本 · 仅供{purpose}使用",
        f"{request.using_unit} · 事项 {request.matter}",
        made.strftime("%Y-%m-%d %H:%M"),
    ]
    if status is not Status.VALID:
        lines.insert(0, f"证照{_state(status)} · 非有效证照")
    return lines


# --- the original ---------------------------------------------------------------------------------------------


def _file(repo: Repository, certificate: Certificate) -> bytes:
    if certificate.file_key is None:
        raise CopyUnavailableError(f"certificate {certificate.identifier} has no file to copy")
    if certificate.file_media_type != OFD_MEDIA_TYPE:
        raise CopyUnavailableError(
            f"certificate {certificate.identifier}'s file is {certificate.file_media_type}, not OFD: copies are "
            "made of OFD files only"
        )
    return repo.blobs.get(certificate.file_key)


def _findings(report: VerificationReport) -> str:
    """The first few failed or unknown checks and problems of a report, on one line."""
    reasons = [
        f"{signature.id} {check.name}: {check.reason}"
        for signature in report.signatures
        for check in signature.checks
        if check.result in (CheckResult.FAILED, CheckResult.UNKNOWN)
    ]
    reasons += list(report.problems)
    return "; ".join(reasons[:3]) or "no further detail"


def _verify_original(original: bytes, identifier: str, trust: TrustStore) -> OfdPackage:
    """The stored file must verify VALID (offline) and name ``identifier``: the repository does not certify a
    copy of a broken or foreign original. Returns the package read for the verification (read once)."""
    verified = verify_and_read(original, trust=trust)
    report = verified.report
    if report.indication is not Indication.VALID:
        raise CopyUnavailableError(
            f"certificate {identifier}'s stored file does not verify ({report.indication.value}: "
            f"{_findings(report)}); the repository does not certify a copy of it"
        )
    named = None if report.certificate is None else report.certificate.identifier
    if named != identifier:
        raise CopyUnavailableError(
            f"certificate {identifier}'s stored file names certificate {named!r}; no copy is made of it"
        )
    if verified.package is None:  # a VALID OFD was read; this guards the type
        raise CopyUnavailableError(f"certificate {identifier}'s stored file is not an OFD package")
    return verified.package


def _check_same_face(original: bytes, rebuilt: bytes, identifier: str) -> None:
    """Every file of the face built again (``rebuilt``, unsealed) must be in the original as it is
    (:func:`certstore.packaging.ofd.edit.differing_files`: OFD.xml and fonts aside, images by their pixels)."""
    differing = differing_files(original, rebuilt)
    if differing:
        raise CopyUnavailableError(
            f"the face of certificate {identifier} laid out again differs from its stored original in "
            f"{', '.join(differing)}: the original was issued with another verify_base_url (QR code), catalogue "
            "layout, face font or metadata; a copy must show exactly the original's face"
        )


def _original_layout(
    original: bytes, data: FaceData, metadata: Mapping[str, str], verify_base_url: str, identifier: str
) -> FaceLayout:
    """The face laid out again exactly as the original shows it: with the short QR path that faces carry now,
    or — for a certificate sealed before short paths existed — the long ``/v/<identifier>`` path it was sealed
    with (:func:`_check_same_face` decides; nothing else differs between the two)."""
    from certstore.packaging.face import lay_out_face  # fonts and images: imported when a copy is made

    layout = lay_out_face(data, verify_base_url=verify_base_url)
    try:
        _check_same_face(original, build_ofd(layout, metadata=metadata, doc_id=identifier), identifier)
        return layout
    except CopyUnavailableError:
        long_form = lay_out_face(data, verify_base_url=verify_base_url, short_qr=False)
        if long_form.extras.get("verify_url") == layout.extras.get("verify_url"):
            raise
        _check_same_face(original, build_ofd(long_form, metadata=metadata, doc_id=identifier), identifier)
        return long_form


def _issuer_stamps(package: OfdPackage) -> list[PageStamp]:
    """Every seal picture the original shows on page 1, from the seal signatures that sealed it."""
    try:
        stamps = seal_stamps(package, page=0)
    except OfdFormatError as exc:
        raise CopyUnavailableError(f"the stored original cannot be read: {exc}") from exc
    if not stamps:
        raise CopyUnavailableError(
            "the stored original shows no seal on page 1: there is no seal picture to copy"
        )
    return stamps


# --- the copy ---------------------------------------------------------------------------------------------------


def _copy_doc_id(identifier: str, request: CopyRequest, made: datetime) -> str:
    """32 hex digits: the copy is a document of its own, identified by what it is a copy of, for whom, when."""
    basis = "\n".join(
        ["certstore-copy", identifier, made.isoformat(), *(getattr(request, f.name) for f in fields(request))]
    )
    return sm3_hex(basis.encode())[:32]


def make_copy(
    repo: Repository,
    identifier: str,
    request: CopyRequest,
    *,
    key: SealingKey,
    trust: TrustStore,
    at: datetime | None = None,
    verify_base_url: str = DEFAULT_VERIFY_BASE_URL,
) -> bytes:
    """The copy (副本) of certificate ``identifier`` for ``request``, as OFD bytes: a new document with the
    certificate's face, the issuer's seal picture, a watermark and the stored original embedded, sealed with
    ``key`` (:func:`repository_sealing_key`) at ``at`` (default now; timezone-aware). See the module docstring.

    ``trust`` verifies the stored original first; ``verify_base_url`` must be the one the original was issued
    with (its QR code; :func:`certstore.services.issuance.make_ofd`'s argument). A certificate that is not valid
    at ``at`` (revoked, expired, superseded …) is copied too; its watermark then states the status.

    Raises :class:`~certstore.services.certificates.CertificateNotFoundError` for an unknown identifier,
    :class:`CopyUnavailableError` when the certificate has no OFD file, its file does not verify or its face
    cannot be reproduced, :class:`ValueError` for a naive ``at`` or request text the face font cannot draw, and
    the sealing errors of :func:`~certstore.packaging.ofd.add_seal` when ``key`` may not seal at ``at``.
    """
    when = at if at is not None else datetime.now(UTC)
    if when.tzinfo is None:
        raise ValueError("at must be a timezone-aware datetime")
    when = when.replace(microsecond=0)
    made = when.astimezone(CHINA_STANDARD_TIME)
    certificate = certificates.get(repo, identifier)
    original = _file(repo, certificate)
    status = certificate.status_at(when)
    lines = _watermark_lines(request, status, made)
    from certstore.packaging import fonts  # imported when a copy is made, not at start-up

    missing = fonts.missing_glyphs("".join(lines))
    if missing:
        raise ValueError(f"the copy request has characters the face font cannot draw: {missing!r}")
    stored = _verify_original(original, certificate.identifier, trust)

    # the face, as the original was made (issuance.make_ofd), and the proof that it is the original's
    entry = get_entry(repo, certificate.catalogue_code, certificate.catalogue_version)
    data = FaceData.from_certificate(certificate, entry)
    # the record's own order does not survive every database (PostgreSQL's jsonb orders keys its own way)
    metadata = in_custom_data_order(data.metadata, stored)
    layout = _original_layout(original, data, metadata, verify_base_url, certificate.identifier)

    stamps = _issuer_stamps(stored)
    try:
        pictures = tuple(stamp_image(stamp, SEAL_PICTURE_ROLE) for stamp in stamps)
    except OfdEditError as exc:
        raise CopyUnavailableError(f"the issuer's seal picture cannot be copied: {exc}") from exc
    face = replace(layout, images=(*layout.images, *pictures), title=f"{layout.title or entry.name}（副本）")
    copy_data = {
        "FB_YYDW": request.using_unit,
        "FB_SXBH": request.matter,
        "FB_YT": request.purpose,
        "FB_SQR": request.requested_by,
        "FB_SCSJ": made.isoformat(),
        "FB_ZZZT": status.value,
        "FB_YJSM3": sm3_hex(original),
    }
    clash = sorted(set(copy_data) & set(metadata))
    if clash:
        raise CopyUnavailableError(f"the certificate's metadata already use the copy fields {clash}")
    try:
        package = build_ofd(
            face,
            metadata=metadata,
            attachments=[
                Attachment(
                    name=ORIGINAL_TITLE,
                    file_name=ORIGINAL_FILE_NAME,
                    data=original,
                    format=ORIGINAL_ATTACHMENT_FORMAT,
                    visible=True,
                    usage=ORIGINAL_ATTACHMENT_USAGE,
                )
            ],
            doc_id=_copy_doc_id(certificate.identifier, request, made),
            creation_date=made.date(),
        )
        watermarked = add_watermark(
            add_custom_datas(package, copy_data),
            lines=lines,
            modified=made.date(),
            parameters={
                "identifier": certificate.identifier,
                "certificate_status": status.value,
                "using_unit": request.using_unit,
                "matter": request.matter,
                "purpose": request.purpose,
                "requested_by": request.requested_by,
                "made_at": made.isoformat(),
            },
        )
    except (OfdBuildError, OfdAnnotationError, OfdEditError) as exc:
        raise CopyUnavailableError(f"the copy of certificate {identifier} cannot be built: {exc}") from exc

    picture = parse_seal(key.seal).picture
    width = float(picture.width_mm) if picture.width_mm > 0 else _DEFAULT_STAMP_MM
    height = float(picture.height_mm) if picture.height_mm > 0 else _DEFAULT_STAMP_MM
    page = Box(0.0, 0.0, layout.width_mm, layout.height_mm)
    try:
        box = place_stamp(page, [stamp.box for stamp in stamps], width, height)
    except OfdEditError:
        raise CopyUnavailableError(
            "page 1 has no room for the repository's stamp clear of the issuer's seal"
        ) from None
    return add_seal(
        watermarked,
        seal=key.seal,
        signer=key.signer,
        signer_certificate=key.certificate,
        stamp_box=box,
        signing_time=when,
        protect="all",
        timestamper=key.timestamper,
    )
