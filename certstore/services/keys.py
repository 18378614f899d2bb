"""Key-store use cases: the development hierarchy, importing a deployment's own keys, making seals."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from certstore.crypto.encoding import load_private_key
from certstore.crypto.sm2 import SM2PrivateKey, SoftwareSigner
from certstore.crypto.trust import TrustStore, validate_chain
from certstore.crypto.x509 import CertificateProfile, issue_certificate, load_certificates
from certstore.keystore import (
    REPOSITORY_SEAL_NAME,
    REPOSITORY_SIGNER_NAME,
    TSA_SIGNER_NAME,
    KeyStore,
    KeyStoreError,
    SignerEntry,
    SignerRole,
)
from certstore.seal import SealPicture, make_seal

__all__ = [
    "DEV_REPOSITORY",
    "DevHierarchy",
    "IssuerSeal",
    "add_issuer_seals",
    "add_missing_tsa",
    "dev_issuers",
    "import_signer",
    "init_dev_keys",
    "make_seal_for_signer",
]

#: The repository (电子证照库) itself, which seals the copies (副本) it hands to using units; run by the city's
#: big-data bureau (a fictional credit code under Zhengzhou's division code 410100).
DEV_REPOSITORY = {
    "name": "郑州市电子证照库",
    "seal_name": "郑州市电子证照库副本专用章",
    "es_id": "41010000000002",
    "credit_code": "114101009900000902",
}
ROOT_NAME, MAKER_NAME = "root-ca", "seal-maker"
SIGNING_USAGES = frozenset({"digital_signature", "non_repudiation"})


@dataclass(frozen=True)
class IssuerSeal:
    """An issuing agency's signer and seal in the key store, both named by its credit code."""

    credit_code: str
    name: str
    signer: SignerEntry
    seal_path: Path


@dataclass(frozen=True)
class DevHierarchy:
    root: SignerEntry
    seal_maker: SignerEntry
    issuers: tuple[IssuerSeal, ...]
    trust_anchor_path: Path
    repository: SignerEntry
    repository_seal_path: Path
    tsa: SignerEntry

    def pem_paths(self) -> dict[str, Path]:
        paths = {
            "root CA certificate": self.root.cert_path,
            "root CA key": self.root.key_path,
            "seal maker certificate": self.seal_maker.cert_path,
            "seal maker key": self.seal_maker.key_path,
            "repository signer certificate": self.repository.cert_path,
            "repository signer key": self.repository.key_path,
            "time-stamp authority certificate": self.tsa.cert_path,
            "trust anchor": self.trust_anchor_path,
        }
        for issuer in self.issuers:
            paths[f"seal of {issuer.name}"] = issuer.seal_path
        return paths


def dev_issuers() -> dict[str, str]:
    """The issuing agencies of the shipped catalogue: credit code → name (one seal each in the dev key store)."""
    from certstore.catalogue.definitions import shipped_entries

    return {entry.issuer.credit_code: entry.issuer.name for entry in shipped_entries()}


def _organisation_subject(name: str, credit_code: str, role: str) -> dict[str, str]:
    """A certificate subject that ties the key to its organisation: O = its name, organizationIdentifier = its
    unified social credit code (the owner of the seals the key may use)."""
    return {
        "country_name": "CN",
        "organization_name": name,
        "organization_identifier": credit_code,
        "common_name": f"{name} {role}",
    }


class _Issuing:
    """Issues certificates under the dev root (the root's key loaded once)."""

    def __init__(self, store: KeyStore, now: datetime) -> None:
        self.store = store
        self.now = now
        root = store.signer_entry(ROOT_NAME)
        self.root_cert = root.certificate
        self.root_signer = store.signer(ROOT_NAME)

    def issue(
        self, name: str, role: SignerRole, profile: CertificateProfile, subject: dict[str, str], years: int
    ) -> SignerEntry:
        key = SM2PrivateKey.generate()
        cert = issue_certificate(
            subject,
            key.public_key,
            issuer=self.root_cert,
            issuer_signer=self.root_signer,
            profile=profile,
            not_before=self.now - timedelta(minutes=5),
            not_after=self.now + timedelta(days=365 * years),
        )
        return self.store.add_signer(name, role=role, key=key, certificate=cert, chain=(self.root_cert,))


def init_dev_keys(store: KeyStore, *, force: bool = False, now: datetime | None = None) -> DevHierarchy:
    """Create the development hierarchy under one root CA, and trust the root:

    * the seal maker (制章者, certificate asserting the seal-maker purpose);
    * per issuing agency of the shipped catalogue, a signer (签章者) whose certificate names the agency and its
      credit code, and the agency's seal 「<agency>电子证照专用章」 listing it — both named by the credit code;
    * the repository's signer and its seal 「郑州市电子证照库副本专用章」, which seals copies (副本);
    * the time-stamp authority key ``tsa`` (certificate with the critical id-kp-timeStamping purpose).

    Refuses to touch an existing key store unless ``force`` (which deletes it first)."""
    from certstore.packaging.seal_picture import render_seal_picture  # drawing (Pillow): imported when used

    if store.exists():
        if not force:
            raise KeyStoreError(f"key store {store.root} already exists; use --force to replace it")
        shutil.rmtree(store.root)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    root_key = SM2PrivateKey.generate()
    root_cert = issue_certificate(
        {
            "country_name": "CN",
            "organization_name": "certstore",
            "common_name": "certstore 开发根CA（仅供测试）",
        },
        root_key.public_key,
        issuer=None,
        issuer_signer=SoftwareSigner(root_key),
        profile=CertificateProfile.ROOT_CA,
        not_before=now - timedelta(minutes=5),
        not_after=now + timedelta(days=3650),
    )
    root = store.add_signer(ROOT_NAME, role=SignerRole.CA, key=root_key, certificate=root_cert)
    anchor_path = store.add_trust_anchor(ROOT_NAME, root_cert)
    issuing = _Issuing(store, now)
    maker = issuing.issue(
        MAKER_NAME,
        SignerRole.SEAL_MAKER,
        CertificateProfile.SEAL_MAKER,
        {"country_name": "CN", "organization_name": "certstore", "common_name": "certstore 制章系统（开发）"},
        5,
    )
    repository = issuing.issue(
        REPOSITORY_SIGNER_NAME,
        SignerRole.SIGNER,
        CertificateProfile.SIGNER,
        _organisation_subject(DEV_REPOSITORY["name"], DEV_REPOSITORY["credit_code"], "副本签章"),
        3,
    )
    repository_seal = make_seal_for_signer(
        store,
        signer_name=REPOSITORY_SIGNER_NAME,
        display_name=DEV_REPOSITORY["seal_name"],
        es_id=DEV_REPOSITORY["es_id"],
        picture=render_seal_picture(DEV_REPOSITORY["name"], diameter_mm=36),
        valid_days=365 * 3 - 1,
        now=now,
    )
    repository_seal_path = store.add_seal(REPOSITORY_SEAL_NAME, repository_seal)
    tsa = _issue_tsa(issuing)
    issuers = add_issuer_seals(store, now=now)
    return DevHierarchy(root, maker, issuers, anchor_path, repository, repository_seal_path, tsa)


def _issue_tsa(issuing: _Issuing) -> SignerEntry:
    return issuing.issue(
        TSA_SIGNER_NAME,
        SignerRole.TSA,
        CertificateProfile.TSA,
        _organisation_subject(DEV_REPOSITORY["name"], DEV_REPOSITORY["credit_code"], "时间戳服务"),
        5,
    )


def add_missing_tsa(store: KeyStore, *, now: datetime | None = None) -> SignerEntry | None:
    """Give a development key store made before trusted time its time-stamp authority key ``tsa`` (under its dev
    root); None when it has one already, or is not a development key store."""
    names = store.signer_names()
    if TSA_SIGNER_NAME in names or ROOT_NAME not in names:
        return None
    return _issue_tsa(_Issuing(store, (now or datetime.now(UTC)).replace(microsecond=0)))


def add_issuer_seals(store: KeyStore, *, now: datetime | None = None) -> tuple[IssuerSeal, ...]:
    """Give every issuing agency of the shipped catalogue that has no signer in ``store`` yet a signer and a seal
    (named by its credit code), issued under the store's dev root. Returns the ones added — none when all exist,
    which makes ``keys init --if-missing`` bring a key store of an earlier version up to date."""
    from certstore.packaging.seal_picture import render_seal_picture  # drawing (Pillow): imported when used

    now = (now or datetime.now(UTC)).replace(microsecond=0)
    names = store.signer_names()
    missing = {code: name for code, name in dev_issuers().items() if code not in names}
    if not missing or ROOT_NAME not in names:  # a deployment's imported keys: its seals are its own business
        return ()
    issuing = _Issuing(store, now)
    added = []
    for credit_code, name in sorted(missing.items()):
        signer = issuing.issue(
            credit_code,
            SignerRole.SIGNER,
            CertificateProfile.SIGNER,
            _organisation_subject(name, credit_code, "电子印章签章人"),
            3,
        )
        seal = make_seal_for_signer(
            store,
            signer_name=credit_code,
            display_name=f"{name}电子证照专用章",
            picture=render_seal_picture(name),
            valid_days=365 * 3 - 1,
            now=now,
        )
        added.append(IssuerSeal(credit_code, name, signer, store.add_seal(credit_code, seal, overwrite=True)))
    return tuple(added)


def make_seal_for_signer(
    store: KeyStore,
    *,
    signer_name: str,
    display_name: str,
    picture: SealPicture,
    valid_days: int = 365,
    es_id: str | None = None,
    seal_type: int = 1,
    maker_name: str | None = None,
    now: datetime | None = None,
) -> bytes:
    """Make (DER) a GB/T 38540 seal signed by the store's seal maker and listing ``signer_name``'s certificate.

    The seal's validity is clipped to the signer certificate's, so the seal never outlives the key that uses it.
    """
    if valid_days < 1:
        raise KeyStoreError("a seal must be valid for at least one day")
    signer = store.signer_entry(signer_name)
    maker = store.signer_entry(maker_name) if maker_name else store.signer_of_role(SignerRole.SEAL_MAKER)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    valid_end = min(now + timedelta(days=valid_days), signer.certificate.not_after)
    if valid_end <= now:
        raise KeyStoreError(f"signer {signer_name!r}'s certificate has expired; cannot make a seal for it")
    return make_seal(
        maker=store.signer(maker.name),
        maker_certificate=maker.certificate,
        es_id=es_id or _new_es_id(),
        name=display_name,
        seal_type=seal_type,
        signer_certificates=[signer.certificate],
        picture=picture,
        valid_start=now,
        valid_end=valid_end,
        created=now,
    )


def _new_es_id() -> str:
    """A 14-digit seal code: Zhengzhou's division code 410100 followed by 8 random digits."""
    return "410100" + f"{int.from_bytes(os.urandom(4), 'big') % 10**8:08d}"


def import_signer(
    store: KeyStore,
    *,
    name: str,
    key_pem: bytes,
    cert_pem: bytes,
    chain_pem: bytes | None = None,
    password_env: str | None = None,
    role: SignerRole = SignerRole.SIGNER,
    now: datetime | None = None,
) -> SignerEntry:
    """Import an existing SM2 key + certificate (+ chain); the chain's root becomes a trust anchor.

    The chain must lead from the certificate to a self-signed root (given in ``chain_pem``, or the certificate
    itself when self-signed) and validate now; the key file is kept as given, so an encrypted key stays
    encrypted and is opened later with the password in ``$password_env``."""
    password = None
    if password_env:
        value = os.environ.get(password_env)
        if value is None:
            raise KeyStoreError(f"--password-env {password_env}: the variable is not set")
        password = value.encode()
    key = load_private_key(key_pem, password)
    certs = load_certificates(cert_pem)
    certificate, extra = certs[0], certs[1:]
    chain = tuple(extra) + (tuple(load_certificates(chain_pem)) if chain_pem and chain_pem.strip() else ())
    roots = [c for c in (certificate, *chain) if c.is_self_issued and c.is_signed_by(c.public_key)]
    if not roots:
        raise KeyStoreError("the chain has no self-signed root certificate to trust; pass it with --chain")
    root = roots[-1]
    intermediates = tuple(c for c in chain if c != root)
    validation = validate_chain(
        certificate,
        trust=TrustStore([root]),
        at=now or datetime.now(UTC),
        intermediates=intermediates,
        key_usage=SIGNING_USAGES if role is not SignerRole.CA else frozenset(),
    )
    if not validation.ok:
        raise KeyStoreError(f"certificate chain does not validate: {validation.reason}")
    entry = store.add_signer(
        name,
        role=role,
        key=key,
        certificate=certificate,
        chain=validation.path[1:],
        key_pem=key_pem if password_env else None,
        password_env=password_env,
    )
    store.add_trust_anchor(f"{name}-root", root)
    return entry
