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
from certstore.keystore import KeyStore, KeyStoreError, SignerEntry, SignerRole
from certstore.packaging.seal_picture import render_seal_picture
from certstore.seal import SealPicture, make_seal

__all__ = [
    "DEV_AGENCY",
    "DEV_REPOSITORY",
    "REPOSITORY_SEAL_NAME",
    "REPOSITORY_SIGNER_NAME",
    "DevHierarchy",
    "import_signer",
    "init_dev_keys",
    "make_seal_for_signer",
]

#: The sample issuing agency of the dev hierarchy (a fictional unit under Zhengzhou's division code 410100).
DEV_AGENCY = {
    "name": "郑州市示例发证机关",
    "seal_name": "郑州市示例发证机关电子证照专用章",
    "es_id": "41010000000001",
}
#: The repository (电子证照库) itself, which seals the copies (副本) it hands to using units.
DEV_REPOSITORY = {
    "name": "郑州市电子证照库",
    "seal_name": "郑州市电子证照库副本专用章",
    "es_id": "41010000000002",
}
ROOT_NAME, MAKER_NAME, AGENCY_SIGNER_NAME, DEFAULT_SEAL_NAME = "root-ca", "seal-maker", "agency", "default"
#: Key-store names of the repository's signer (副本签章) and of its seal.
REPOSITORY_SIGNER_NAME, REPOSITORY_SEAL_NAME = "repository", "repository"
SIGNING_USAGES = frozenset({"digital_signature", "non_repudiation"})


@dataclass(frozen=True)
class DevHierarchy:
    root: SignerEntry
    seal_maker: SignerEntry
    agency: SignerEntry
    seal_path: Path
    trust_anchor_path: Path
    repository: SignerEntry
    repository_seal_path: Path

    def pem_paths(self) -> dict[str, Path]:
        return {
            "root CA certificate": self.root.cert_path,
            "root CA key": self.root.key_path,
            "seal maker certificate": self.seal_maker.cert_path,
            "seal maker key": self.seal_maker.key_path,
            "agency signer certificate": self.agency.cert_path,
            "agency signer key": self.agency.key_path,
            "repository signer certificate": self.repository.cert_path,
            "repository signer key": self.repository.key_path,
            "trust anchor": self.trust_anchor_path,
        }


def init_dev_keys(store: KeyStore, *, force: bool = False, now: datetime | None = None) -> DevHierarchy:
    """Create root CA → seal maker, root CA → agency signer and root CA → repository signer, trust the root, and
    make the default seal (the agency's) and the ``repository`` seal (电子证照库副本专用章, which seals copies).

    Refuses to touch an existing key store unless ``force`` (which deletes it first)."""
    if store.exists():
        if not force:
            raise KeyStoreError(f"key store {store.root} already exists; use --force to replace it")
        shutil.rmtree(store.root)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    start = now - timedelta(minutes=5)

    root_key = SM2PrivateKey.generate()
    root_signer = SoftwareSigner(root_key)
    root_cert = issue_certificate(
        {
            "country_name": "CN",
            "organization_name": "certstore",
            "common_name": "certstore 开发根CA（仅供测试）",
        },
        root_key.public_key,
        issuer=None,
        issuer_signer=root_signer,
        profile=CertificateProfile.ROOT_CA,
        not_before=start,
        not_after=now + timedelta(days=3650),
    )
    root = store.add_signer(ROOT_NAME, role=SignerRole.CA, key=root_key, certificate=root_cert)
    anchor_path = store.add_trust_anchor(ROOT_NAME, root_cert)

    def issue(name: str, role: SignerRole, subject: dict[str, str], years: int) -> SignerEntry:
        key = SM2PrivateKey.generate()
        cert = issue_certificate(
            subject,
            key.public_key,
            issuer=root_cert,
            issuer_signer=root_signer,
            profile=CertificateProfile.SEAL_MAKER
            if role is SignerRole.SEAL_MAKER
            else CertificateProfile.SIGNER,
            not_before=start,
            not_after=now + timedelta(days=365 * years),
        )
        return store.add_signer(name, role=role, key=key, certificate=cert, chain=(root_cert,))

    maker = issue(
        MAKER_NAME,
        SignerRole.SEAL_MAKER,
        {"country_name": "CN", "organization_name": "certstore", "common_name": "certstore 制章系统（开发）"},
        5,
    )
    agency = issue(
        AGENCY_SIGNER_NAME,
        SignerRole.SIGNER,
        {
            "country_name": "CN",
            "organization_name": DEV_AGENCY["name"],
            "common_name": f"{DEV_AGENCY['name']} 签章人",
        },
        3,
    )
    seal = make_seal_for_signer(
        store,
        signer_name=AGENCY_SIGNER_NAME,
        display_name=DEV_AGENCY["seal_name"],
        es_id=DEV_AGENCY["es_id"],
        picture=render_seal_picture(DEV_AGENCY["name"]),
        valid_days=365 * 3 - 1,
        now=now,
    )
    seal_path = store.add_seal(DEFAULT_SEAL_NAME, seal)
    repository = issue(
        REPOSITORY_SIGNER_NAME,
        SignerRole.SIGNER,
        {
            "country_name": "CN",
            "organization_name": "certstore 电子证照库",
            "common_name": "电子证照库 副本签章",
        },
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
    return DevHierarchy(root, maker, agency, seal_path, anchor_path, repository, repository_seal_path)


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
