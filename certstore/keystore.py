"""The key store (密钥库): signing keys, their certificate chains, seals and trust anchors on disk.

Layout under ``<data-dir>/keys`` (all PEM files are OpenSSL-readable)::

    trust/<name>.pem              trust anchors: root certificates verification paths must end in
    signers/<name>/key.pem        private key, PKCS#8 (encrypted when imported encrypted), mode 0600
    signers/<name>/cert.pem       the signer's certificate
    signers/<name>/chain.pem      issuing CA certificates, leaf-most first (may be empty)
    signers/<name>/signer.json    role (seal-maker | signer | tsa | ca), password variable, origin
    seals/<name>.esl              GB/T 38540 seals (DER SESeal)
    makers/<name>.pem             trusted seal makers (制章者) whose certificates lack certstore's seal-maker
                                  purpose (another vendor's 制章系统, vetted by the deployment)

A "signer" here is any key that signs: the CA key, the seal maker (制章者) and the seal users (签章者). Private
keys never leave this folder except through an explicit export, and the folder is git-ignored.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from certstore.crypto.encoding import dump_private_key, load_private_key
from certstore.crypto.sm2 import SM2PrivateKey, SoftwareSigner
from certstore.crypto.trust import TrustStore
from certstore.crypto.x509 import Certificate, CertificateError, load_certificates

__all__ = [
    "REPOSITORY_SEAL_NAME",
    "REPOSITORY_SIGNER_NAME",
    "TSA_SIGNER_NAME",
    "KeyStore",
    "KeyStoreError",
    "SignerEntry",
    "SignerRole",
    "secret_key",
]

#: Key-store names of the repository's signer (副本签章) and of its seal, and of its time-stamp authority key.
REPOSITORY_SIGNER_NAME, REPOSITORY_SEAL_NAME, TSA_SIGNER_NAME = "repository", "repository", "tsa"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class KeyStoreError(ValueError):
    """A key-store operation cannot be done (unknown name, bad name, mismatched key, missing password)."""


class SignerRole(StrEnum):
    CA = "ca"
    SEAL_MAKER = "seal-maker"  # 制章者
    SIGNER = "signer"  # 签章者
    TSA = "tsa"  # 时间戳服务 (RFC 3161 time-stamp authority)


@dataclass(frozen=True)
class SignerEntry:
    """A signing key's public side as stored: certificate, chain and metadata. Load the key with
    :meth:`KeyStore.signer`."""

    name: str
    role: SignerRole
    certificate: Certificate
    chain: tuple[Certificate, ...]
    password_env: str | None
    directory: Path

    @property
    def key_path(self) -> Path:
        return self.directory / "key.pem"

    @property
    def cert_path(self) -> Path:
        return self.directory / "cert.pem"

    @property
    def chain_path(self) -> Path:
        return self.directory / "chain.pem"


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise KeyStoreError(f"invalid name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
    return name


def _write_private(path: Path, data: bytes) -> None:
    """Write a file readable only by its owner, atomically (a crash leaves the old file or none)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def secret_key(
    path: Path, setting: str, env: Mapping[str, str], *, prepare: Callable[[], None] | None = None
) -> bytes:
    """A 32-byte repository secret: the setting ``setting`` of ``env`` (64 hex digits) when given, else the hex
    file at ``path``, created (mode 0600) on first use — after ``prepare()``, which makes its directory (default:
    ``path.parent`` and its parents); of two processes racing, exactly one key wins. :class:`KeyStoreError` (a
    ``ValueError``) for a malformed setting or file."""
    configured = env.get(setting)
    if configured:
        try:
            key = bytes.fromhex(configured)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise KeyStoreError(f"{setting} must be 64 hexadecimal digits (32 bytes)")
        return key
    if not path.exists():
        if prepare is not None:
            prepare()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        _write_private(tmp, os.urandom(32).hex().encode("ascii"))
        try:
            os.link(tmp, path)  # atomic: an existing key is never replaced
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except ValueError:
        key = b""
    if len(key) != 32:
        raise KeyStoreError(f"{path} is damaged: expected 64 hexadecimal digits")
    return key


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


class KeyStore:
    """Keys, certificates, seals and trust anchors under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def trust_dir(self) -> Path:
        return self.root / "trust"

    @property
    def signers_dir(self) -> Path:
        return self.root / "signers"

    @property
    def seals_dir(self) -> Path:
        return self.root / "seals"

    def exists(self) -> bool:
        return self.signers_dir.is_dir() and any(self.signers_dir.iterdir())

    def _ensure(self) -> None:
        for directory in (self.root, self.trust_dir, self.signers_dir, self.seals_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)

    # --- trust anchors -------------------------------------------------------------------------------

    def add_trust_anchor(self, name: str, certificate: Certificate) -> Path:
        self._ensure()
        path = self.trust_dir / f"{_check_name(name)}.pem"
        _write_public(path, certificate.pem)
        return path

    def trust_anchor_files(self) -> list[Path]:
        return sorted(self.trust_dir.glob("*.pem")) if self.trust_dir.is_dir() else []

    def trust_store(self) -> TrustStore:
        """The trust anchors, with the trusted seal makers: ``makers/*.pem`` and the store's own seal-maker keys
        (a key store made before seal-maker certificates asserted their purpose keeps verifying its seals)."""
        makers = [c for path in self.maker_files() for c in load_certificates(path.read_bytes())]
        makers += [e.certificate for e in self.signer_entries() if e.role is SignerRole.SEAL_MAKER]
        return TrustStore.from_pem_files(self.trust_anchor_files()).with_makers(makers)

    @property
    def makers_dir(self) -> Path:
        return self.root / "makers"

    def maker_files(self) -> list[Path]:
        return sorted(self.makers_dir.glob("*.pem")) if self.makers_dir.is_dir() else []

    def add_trusted_maker(self, name: str, certificate: Certificate) -> Path:
        """Trust ``certificate`` as a seal maker (制章者) although it does not assert the seal-maker purpose."""
        self._ensure()
        self.makers_dir.mkdir(exist_ok=True)
        path = self.makers_dir / f"{_check_name(name)}.pem"
        _write_public(path, certificate.pem)
        return path

    # --- signers -------------------------------------------------------------------------------------

    def add_signer(
        self,
        name: str,
        *,
        role: SignerRole,
        key: SM2PrivateKey,
        certificate: Certificate,
        chain: tuple[Certificate, ...] = (),
        key_pem: bytes | None = None,
        password_env: str | None = None,
        overwrite: bool = False,
    ) -> SignerEntry:
        """Store a key with its certificate. ``key_pem`` keeps the key file as given (e.g. still encrypted);
        otherwise the key is written as unencrypted PKCS#8 with mode 0600."""
        if certificate.public_key != key.public_key:
            raise KeyStoreError(f"the certificate {certificate.subject!r} is not for this private key")
        self._ensure()
        directory = self.signers_dir / _check_name(name)
        if directory.exists() and not overwrite:
            raise KeyStoreError(f"signer {name!r} already exists")
        directory.mkdir(exist_ok=True)
        directory.chmod(0o700)
        _write_private(directory / "key.pem", key_pem if key_pem is not None else dump_private_key(key))
        _write_public(directory / "cert.pem", certificate.pem)
        _write_public(directory / "chain.pem", b"".join(c.pem for c in chain))
        meta = {"role": role.value, "password_env": password_env}
        _write_public(directory / "signer.json", json.dumps(meta, indent=2).encode())
        return self.signer_entry(name)

    def signer_names(self) -> list[str]:
        if not self.signers_dir.is_dir():
            return []
        return sorted(p.name for p in self.signers_dir.iterdir() if (p / "signer.json").is_file())

    def signer_entries(self) -> Iterator[SignerEntry]:
        for name in self.signer_names():
            yield self.signer_entry(name)

    def signer_entry(self, name: str) -> SignerEntry:
        directory = self.signers_dir / _check_name(name)
        if not (directory / "signer.json").is_file():
            known = ", ".join(self.signer_names()) or "none; run 'certstore keys init'"
            raise KeyStoreError(f"no signer named {name!r} in {self.root} (known: {known})")
        meta = json.loads((directory / "signer.json").read_text())
        try:
            certificate = Certificate.load((directory / "cert.pem").read_bytes())
            chain_data = (directory / "chain.pem").read_bytes()
            chain = tuple(load_certificates(chain_data)) if chain_data.strip() else ()
        except CertificateError as exc:
            raise KeyStoreError(f"signer {name!r}: {exc}") from exc
        return SignerEntry(
            name=name,
            role=SignerRole(meta["role"]),
            certificate=certificate,
            chain=chain,
            password_env=meta.get("password_env"),
            directory=directory,
        )

    def signer_of_role(self, role: SignerRole) -> SignerEntry:
        """The first signer with ``role`` (the dev hierarchy has one of each)."""
        for entry in self.signer_entries():
            if entry.role is role:
                return entry
        raise KeyStoreError(f"no {role.value} key in {self.root}; run 'certstore keys init' or import one")

    def private_key(self, name: str) -> SM2PrivateKey:
        """Load a private key; an encrypted one takes its password from the variable recorded at import."""
        entry = self.signer_entry(name)
        password = None
        if entry.password_env:
            value = os.environ.get(entry.password_env)
            if value is None:
                raise KeyStoreError(
                    f"signer {name!r} is encrypted: set ${entry.password_env} to its password"
                )
            password = value.encode()
        key = load_private_key(entry.key_path.read_bytes(), password)
        if key.public_key != entry.certificate.public_key:
            raise KeyStoreError(f"signer {name!r}: key.pem does not match cert.pem")
        return key

    def signer(self, name: str) -> SoftwareSigner:
        return SoftwareSigner(self.private_key(name))

    # --- repository secrets ------------------------------------------------------------------------------

    def holder_index_key(self, env: Mapping[str, str] = os.environ) -> bytes:
        """The 32-byte key of the holder-ID digests (HMAC-SM3), created on first use.

        ``CERTSTORE_HOLDER_KEY`` (64 hex digits) overrides the file, so several API workers and the exchange
        worker can share one key without sharing a disk. Losing the key makes holder look-ups miss until
        the digests are recomputed; it is not needed to read certificates."""
        return secret_key(self.root / "holder-index.key", "CERTSTORE_HOLDER_KEY", env, prepare=self._ensure)

    def serial_key(self, env: Mapping[str, str] = os.environ) -> bytes:
        """The 32-byte key of the certificate serials (流水号, HMAC-SM3 of issuer and number), created on first use
        (``serial.key``). ``CERTSTORE_SERIAL_KEY`` (64 hex digits) overrides the file, for workers that share no
        disk. Every process issuing for one repository must use the same key, or a repeated push of a certificate
        would get another identifier; losing it changes the identifiers of certificates issued afterwards only
        (stored ones keep theirs, and so do their later versions)."""
        return secret_key(self.root / "serial.key", "CERTSTORE_SERIAL_KEY", env, prepare=self._ensure)

    # --- seals ---------------------------------------------------------------------------------------

    def add_seal(self, name: str, seal_der: bytes, *, overwrite: bool = False) -> Path:
        self._ensure()
        path = self.seals_dir / f"{_check_name(name)}.esl"
        if path.exists() and not overwrite:
            raise KeyStoreError(f"seal {name!r} already exists")
        _write_public(path, seal_der)
        return path

    def seal_files(self) -> list[Path]:
        return sorted(self.seals_dir.glob("*.esl")) if self.seals_dir.is_dir() else []

    def seal(self, name: str) -> bytes:
        path = self.seals_dir / f"{_check_name(name)}.esl"
        if not path.is_file():
            known = ", ".join(p.stem for p in self.seal_files()) or "none"
            raise KeyStoreError(f"no seal named {name!r} (known: {known})")
        return path.read_bytes()
