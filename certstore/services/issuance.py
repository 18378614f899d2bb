"""Making certificate files (电子证照文件): face layout → OFD package → issuer's e-seal; PDF as a second rendition.

The flow of one certificate (ARCHITECTURE.md "the walk to keep short"): the records layer has validated the
draft and assigned the identifier (:class:`~certstore.records.PreparedVersion`); :func:`file_maker` turns that
into a sealed OFD, which ``certstore.services.certificates.issue`` stores before committing the row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from certstore.catalogue import CatalogueEntry
from certstore.crypto.sm2 import Signer
from certstore.crypto.x509 import Certificate
from certstore.keystore import KeyStore, KeyStoreError, SignerRole
from certstore.packaging.face import lay_out_face
from certstore.packaging.layout import FaceData, FaceLayout
from certstore.packaging.ofd import add_seal, build_ofd_files
from certstore.packaging.pdf import build_pdf
from certstore.records import PreparedVersion
from certstore.seal import parse_seal
from certstore.services.certificates import FileMaker

__all__ = [
    "OFD_MEDIA_TYPE",
    "PDF_MEDIA_TYPE",
    "SealingKey",
    "catalogue_file_maker",
    "file_maker",
    "make_ofd",
    "make_pdf",
    "sealing_key",
    "sealing_key_for_seal",
]

OFD_MEDIA_TYPE = "application/ofd"
PDF_MEDIA_TYPE = "application/pdf"
DEFAULT_VERIFY_BASE_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class SealingKey:
    """What an issuer seals with: its signing key, certificate (+ chain) and the seal (电子印章) listing it."""

    signer: Signer
    certificate: Certificate
    chain: tuple[Certificate, ...]
    seal: bytes


def sealing_key(
    store: KeyStore,
    *,
    signer_name: str | None = None,
    seal_name: str = "default",
    seal_der: bytes | None = None,
) -> SealingKey:
    """Load a sealing key from the key store: the named signer (default: the first signer-role key) and the
    seal ``seal_name`` from the store, or ``seal_der`` when given (a seal file from elsewhere).

    The seal must list the signer's certificate, or signing would be refused later with a vaguer error."""
    entry = store.signer_entry(signer_name) if signer_name else store.signer_of_role(SignerRole.SIGNER)
    seal = seal_der if seal_der is not None else store.seal(seal_name)
    if not parse_seal(seal).match_signer(entry.certificate):
        raise KeyStoreError(
            f"seal {seal_name if seal_der is None else '(file)'} does not list signer {entry.name!r}; "
            "make one with 'certstore seal make'"
        )
    return SealingKey(store.signer(entry.name), entry.certificate, entry.chain, seal)


def sealing_key_for_seal(store: KeyStore, seal_name: str) -> SealingKey:
    """The sealing key for the key store's seal ``seal_name`` (a catalogue entry's ``seal``): that seal and the
    signer-role key whose certificate it lists."""
    seal = store.seal(seal_name)
    parsed = parse_seal(seal)
    for entry in store.signer_entries():
        if entry.role is SignerRole.SIGNER and parsed.match_signer(entry.certificate):
            return SealingKey(store.signer(entry.name), entry.certificate, entry.chain, seal)
    raise KeyStoreError(f"no signer in the key store is listed by seal {seal_name!r}")


def _layout(data: FaceData, verify_base_url: str) -> FaceLayout:
    return lay_out_face(data, verify_base_url=verify_base_url)


def make_ofd(
    data: FaceData,
    key: SealingKey,
    *,
    verify_base_url: str = DEFAULT_VERIFY_BASE_URL,
    signing_time: datetime | None = None,
) -> bytes:
    """The sealed OFD of one certificate version: face, metadata inside the package, the issuer's seal."""
    layout = _layout(data, verify_base_url)
    package = build_ofd_files(
        layout, metadata={k: str(v) for k, v in data.metadata.items()}, doc_id=data.identifier
    )
    if layout.seal_box is None:
        raise ValueError(f"catalogue {data.entry.code} lays out no seal position")
    return add_seal(
        package,
        seal=key.seal,
        signer=key.signer,
        signer_certificate=key.certificate,
        stamp_box=layout.seal_box,
        signing_time=signing_time,
        protect="continue",  # a later seal (e.g. the repository's on a copy) must not break this one
    )


def make_pdf(
    data: FaceData,
    key: SealingKey,
    *,
    verify_base_url: str = DEFAULT_VERIFY_BASE_URL,
    signing_time: datetime | None = None,
    chain: Sequence[Certificate] | None = None,
) -> bytes:
    """The PDF rendition: the same face, the seal picture visible, an SM2/SM3 CMS signature."""
    layout = _layout(data, verify_base_url)
    return build_pdf(
        layout,
        metadata={k: str(v) for k, v in data.metadata.items()},
        seal_picture=parse_seal(key.seal).picture.data,
        signer=key.signer,
        signer_certificate=key.certificate,
        chain=tuple(chain) if chain is not None else key.chain,
        signing_time=signing_time,
    )


def file_maker(key: SealingKey, *, verify_base_url: str = DEFAULT_VERIFY_BASE_URL) -> FileMaker:
    """A :data:`~certstore.services.certificates.FileMaker` producing the sealed OFD for a prepared version."""
    return catalogue_file_maker(lambda _entry: key, verify_base_url=verify_base_url)


def catalogue_file_maker(
    keys: KeyStore | Callable[[CatalogueEntry], SealingKey], *, verify_base_url: str = DEFAULT_VERIFY_BASE_URL
) -> FileMaker:
    """A :data:`~certstore.services.certificates.FileMaker` that seals like an API push: each catalogue type
    with the seal it names (``seal``). ``keys``: the key store (each seal's key then loaded once, on first use),
    or a look-up of a catalogue type's key that caches them itself (the API's, shared by its threads)."""
    if isinstance(keys, KeyStore):
        store = keys
        loaded: dict[str, SealingKey] = {}

        def key_for(entry: CatalogueEntry) -> SealingKey:
            if entry.seal not in loaded:
                loaded[entry.seal] = sealing_key_for_seal(store, entry.seal)
            return loaded[entry.seal]

    else:
        key_for = keys

    def make(prepared: PreparedVersion) -> tuple[bytes, str]:
        data = FaceData.from_prepared(prepared)
        return make_ofd(data, key_for(prepared.entry), verify_base_url=verify_base_url), OFD_MEDIA_TYPE

    return make
