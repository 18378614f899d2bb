"""What a stored certificate looks like outside its sealed OFD, made in one place for every entry point: the
face as a PNG (照面预览, full size or a thumbnail for lists) and the PDF rendition signed with the issuer's key.

These functions only render: whoever calls them has already read the certificate through a use case that
authorised and audited the read (:mod:`certstore.services.sharing`, :mod:`certstore.services.certificates`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from certstore.packaging.face import lay_out_face
from certstore.packaging.layout import FaceData, FaceLayout
from certstore.packaging.preview import render_preview, thumbnail
from certstore.records import Certificate
from certstore.seal import parse_seal
from certstore.services.catalogue import get_entry
from certstore.services.issuance import DEFAULT_VERIFY_BASE_URL, make_pdf

if TYPE_CHECKING:
    from certstore.app import Application

__all__ = ["face_layout", "pdf_rendition", "preview_png"]


def _face_data(app: Application, certificate: Certificate) -> FaceData:
    entry = get_entry(app.repo, certificate.catalogue_code, certificate.catalogue_version)
    return FaceData.from_certificate(certificate, entry)


def face_layout(app: Application, certificate: Certificate) -> tuple[FaceLayout, bytes | None]:
    """The face of ``certificate`` as laid out for its files, and the picture of its type's seal (PNG). Nothing
    is sealed: without a configured public URL the QR code shows the loopback default."""
    data = _face_data(app, certificate)
    layout = lay_out_face(data, verify_base_url=app.public_url or DEFAULT_VERIFY_BASE_URL)
    picture = parse_seal(app.sealing_key(data.entry).seal).picture
    return layout, picture.data if picture else None


def preview_png(
    app: Application,
    certificate: Certificate,
    *,
    dpi: int = 96,
    max_px: int | None = None,
    image_format: str = "png",
) -> bytes:
    """The face as a PNG (or ``image_format``: ``webp`` for pages) at ``dpi``, or as a thumbnail whose longer side
    is ``max_px`` pixels."""
    layout, seal = face_layout(app, certificate)
    if max_px is not None:
        return thumbnail(layout, max_px=max_px, seal_picture=seal, image_format=image_format)
    return render_preview(layout, dpi=dpi, seal_picture=seal, image_format=image_format)


def pdf_rendition(app: Application, certificate: Certificate) -> bytes:
    """The PDF rendition of ``certificate``: the same face, sealed (CMS, SM2/SM3) with its type's key. Raises
    :class:`~certstore.store.config.PublicUrlNotConfiguredError` without a public URL."""
    base_url = app.sealing_base_url()
    data = _face_data(app, certificate)
    return make_pdf(data, app.sealing_key(data.entry), verify_base_url=base_url)
