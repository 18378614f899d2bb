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
from certstore.packaging.layout import FaceData, FaceLayout
from certstore.packaging.ofd import add_seal, build_ofd_files
from certstore.records import PreparedVersion
from certstore.seal import SealFormatError, parse_seal
from certstore.seal.owner import certificate_owner, owned_by
from certstore.services.certificates import FileMaker
from certstore.tsa import TimeStamper

__all__ = [
    "ISSUER_SEAL",
    "OFD_MEDIA_TYPE",
    "PDF_MEDIA_TYPE",
    "SealingKey",
    "catalogue_file_maker",
    "file_maker",
    "issuer_seal_name",
    "make_ofd",
    "make_pdf",
    "require_owner",
    "sealing_key",
    "sealing_key_for_entry",
    "sealing_key_for_seal",
]

OFD_MEDIA_TYPE = "application/ofd"
PDF_MEDIA_TYPE = "application/pdf"
DEFAULT_VERIFY_BASE_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class SealingKey:
    """What an issuer seals with: its signing key, certificate (+ chain) and the seal (电子印章) listing it; and the
    time stamper whose token every seal made with it carries (可信时间戳; None: no token)."""

    signer: Signer
    certificate: Certificate
    chain: tuple[Certificate, ...]
    seal: bytes
    timestamper: TimeStamper | None = None


#: A catalogue entry's ``seal`` that means "the issuer's own seal" (the shipped entries name it).
ISSUER_SEAL = "default"


def sealing_key(
    store: KeyStore,
    *,
    signer_name: str | None = None,
    seal_name: str | None = None,
    seal_der: bytes | None = None,
    issuer: str | None = None,
) -> SealingKey:
    """Load a sealing key from the key store: the seal ``seal_name`` from the store (``seal_der`` when given: a
    seal file from elsewhere; when neither: the seal of the issuer with credit code ``issuer``, else the first seal
    that lists ``signer_name``) and the named signer (default: the signer-role key the seal lists).

    The seal must list the signer's certificate, or signing would be refused later with a vaguer error."""
    if seal_der is None and seal_name is None:
        if issuer is not None:
            seal_name = issuer_seal_name(store, issuer)
        elif signer_name is not None:
            seal_name = _seal_listing(store, signer_name)
        else:
            raise KeyStoreError("name a seal, a seal file, a signer or the issuer whose seal to use")
    seal = seal_der if seal_der is not None else store.seal(str(seal_name))
    if signer_name is None:
        return _listed_signer(store, seal, seal_name or "(file)")
    entry = store.signer_entry(signer_name)
    if not parse_seal(seal).match_signer(entry.certificate):
        raise KeyStoreError(
            f"seal {seal_name if seal_der is None else '(file)'} does not list signer {entry.name!r}; "
            "make one with 'certstore seal make'"
        )
    return SealingKey(store.signer(entry.name), entry.certificate, entry.chain, seal)


def _seal_listing(store: KeyStore, signer_name: str) -> str:
    """The first key-store seal that lists signer ``signer_name``."""
    certificate = store.signer_entry(signer_name).certificate
    for path in store.seal_files():
        try:
            if parse_seal(path.read_bytes()).match_signer(certificate):
                return path.stem
        except SealFormatError:
            continue
    raise KeyStoreError(
        f"no seal in the key store lists signer {signer_name!r}; make one with 'certstore seal make'"
    )


def _listed_signer(store: KeyStore, seal: bytes, seal_name: str) -> SealingKey:
    parsed = parse_seal(seal)
    for entry in store.signer_entries():
        if entry.role is SignerRole.SIGNER and parsed.match_signer(entry.certificate):
            return SealingKey(store.signer(entry.name), entry.certificate, entry.chain, seal)
    raise KeyStoreError(f"no signer in the key store is listed by seal {seal_name!r}")


def sealing_key_for_seal(store: KeyStore, seal_name: str) -> SealingKey:
    """The sealing key for the key store's seal ``seal_name``: that seal and the signer-role key it lists."""
    return _listed_signer(store, store.seal(seal_name), seal_name)


def issuer_seal_name(store: KeyStore, credit_code: str) -> str:
    """The key store's seal of the issuing agency ``credit_code``: the seal named by the code (``keys init``
    makes them so), else the one seal whose listed signer certificate names that organisation."""
    names = [path.stem for path in store.seal_files()]
    candidates = ([credit_code] if credit_code in names else []) + [n for n in names if n != credit_code]
    for name in candidates:
        try:
            key = sealing_key_for_seal(store, name)
        except (KeyStoreError, SealFormatError):
            continue
        if key.certificate.organization_identifier == credit_code:
            return name
    raise KeyStoreError(
        f"the key store has no seal of the issuer {credit_code}: run 'certstore keys init --if-missing' (adds the "
        "shipped issuers' seals) or make one with 'certstore seal make' for a signer whose certificate names it"
    )


def sealing_key_for_entry(store: KeyStore, entry: CatalogueEntry, seal: str | None = None) -> SealingKey:
    """The key a catalogue type is sealed with: its issuer's own seal (``seal`` = :data:`ISSUER_SEAL`) or the seal
    it names (``seal`` overrides it, e.g. an import's ``--seal``) — which must belong to the type's issuer
    (:func:`certstore.seal.owner.owned_by`): an agency seals only with its own seal, never another
    organisation's."""
    wanted = seal or entry.seal
    seal_name = issuer_seal_name(store, entry.issuer.credit_code) if wanted == ISSUER_SEAL else wanted
    key = sealing_key_for_seal(store, seal_name)
    require_owner(key, entry, seal_name)
    return key


def require_owner(key: SealingKey, entry: CatalogueEntry, seal_name: str = "the seal") -> None:
    """:class:`~certstore.keystore.KeyStoreError` unless ``key``'s certificate belongs to ``entry``'s issuer.
    Every sealing of a certificate file passes here (:func:`make_ofd`, :func:`make_pdf`): a file sealed with
    another organisation's seal would be refused by every verifier (``seal_owner``)."""
    code, name = entry.issuer.credit_code, entry.issuer.name
    if owned_by(key.certificate, code, name) is None:
        owner = certificate_owner(key.certificate).describe()
        raise KeyStoreError(
            f"{seal_name} belongs to {owner}, not to {name} ({code}), the issuer of catalogue {entry.code}"
        )


def _layout(data: FaceData, verify_base_url: str) -> FaceLayout:
    from certstore.packaging.face import lay_out_face  # fonts and images: imported when a face is laid out

    return lay_out_face(data, verify_base_url=verify_base_url)


def make_ofd(
    data: FaceData,
    key: SealingKey,
    *,
    verify_base_url: str = DEFAULT_VERIFY_BASE_URL,
    signing_time: datetime | None = None,
) -> bytes:
    """The sealed OFD of one certificate version: face, metadata inside the package, the issuer's seal (refused
    when ``key`` is not the issuer's: :func:`require_owner`)."""
    require_owner(key, data.entry, "the sealing key")
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
        timestamper=key.timestamper,
    )


def make_pdf(
    data: FaceData,
    key: SealingKey,
    *,
    verify_base_url: str = DEFAULT_VERIFY_BASE_URL,
    signing_time: datetime | None = None,
    chain: Sequence[Certificate] | None = None,
) -> bytes:
    """The PDF rendition: the same face, the seal picture visible, an SM2/SM3 CMS signature (the issuer's key
    only: :func:`require_owner`)."""
    require_owner(key, data.entry, "the sealing key")
    layout = _layout(data, verify_base_url)
    # pyhanko: imported when a PDF is made, not when the application starts (python -m bench cli)
    from certstore.packaging.pdf import build_pdf

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
    with its issuer's seal or the seal it names (:func:`sealing_key_for_entry`). ``keys``: the key store (each seal's key then loaded once, on first use),
    or a look-up of a catalogue type's key that caches them itself (the API's, shared by its threads)."""
    if isinstance(keys, KeyStore):
        store = keys
        loaded: dict[str, SealingKey] = {}

        def key_for(entry: CatalogueEntry) -> SealingKey:
            reference = f"{entry.issuer.credit_code}/{entry.seal}"
            if reference not in loaded:
                loaded[reference] = sealing_key_for_entry(store, entry)
            return loaded[reference]

    else:
        key_for = keys

    def make(prepared: PreparedVersion) -> tuple[bytes, str]:
        data = FaceData.from_prepared(prepared)
        return make_ofd(data, key_for(prepared.entry), verify_base_url=verify_base_url), OFD_MEDIA_TYPE

    return make
