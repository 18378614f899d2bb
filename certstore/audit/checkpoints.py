"""Signed checkpoints (签名检查点) of the audit log: tree size, root hash, head entry hash and time, signed with
the repository's SM2 key.

The signed text (``body``) is line-oriented and self-describing, so anyone with the certificate can check it
with OpenSSL (``openssl pkeyutl -verify -rawin -digest sm3 -pkeyopt distid:1234567812345678``)::

    certstore audit checkpoint v1
    tree_size 1234
    root_hash <64 hex digits>
    head_hash <64 hex digits>
    time 2026-11-27T08:00:00.000000Z

A checkpoint commits to every entry before ``tree_size``: the root is the Merkle root of their leaves and the
head hash the entry hash of the last one (the chain's end). Verification checks the body against the fields, the
SM2 signature with the embedded certificate, and that certificate against the pinned repository certificates or
the trust anchors of the key store.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from certstore.audit.events import format_time, parse_time
from certstore.crypto.sm2 import Signer
from certstore.crypto.trust import TrustStore, validate_chain
from certstore.crypto.x509 import Certificate, CertificateError, load_certificates
from certstore.store.models import AuditCheckpointRow

__all__ = [
    "BODY_HEADER",
    "Checkpoint",
    "CheckpointKey",
    "checkpoint_body",
    "checkpoint_from_row",
    "checkpoint_problems",
    "sign_checkpoint",
]

BODY_HEADER = "certstore audit checkpoint v1"


class CheckpointKey(Protocol):
    """What signs checkpoints: the repository's key (:func:`certstore.services.copies.repository_sealing_key`
    returns one), or any object with a signer, its certificate and the issuers' chain."""

    @property
    def signer(self) -> Signer: ...

    @property
    def certificate(self) -> Certificate: ...

    @property
    def chain(self) -> tuple[Certificate, ...]: ...


def checkpoint_body(tree_size: int, root_hash: bytes, head_hash: bytes, at: datetime) -> str:
    """The exact text that is signed."""
    return (
        f"{BODY_HEADER}\n"
        f"tree_size {tree_size}\n"
        f"root_hash {root_hash.hex()}\n"
        f"head_hash {head_hash.hex()}\n"
        f"time {format_time(at)}\n"
    )


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head. ``certificate`` is DER; ``chain`` the PEM of its issuers (possibly empty)."""

    tree_size: int
    root_hash: bytes
    head_hash: bytes
    at: datetime
    body: str = field(repr=False)
    signature: bytes = field(repr=False)
    certificate: bytes = field(repr=False)
    chain: bytes = field(default=b"", repr=False)
    id: int | None = None

    @property
    def signer_fingerprint(self) -> str:
        try:
            return Certificate.from_der(self.certificate).fingerprint
        except (CertificateError, ValueError):
            return "unparseable certificate"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "head_hash": self.head_hash.hex(),
            "at": format_time(self.at),
            "body": self.body,
            "signature": base64.b64encode(self.signature).decode(),
            "certificate": _pem(self.certificate),
            "chain": self.chain.decode("ascii", "replace"),
            "signer_fingerprint": self.signer_fingerprint,
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> Checkpoint:
        """Inverse of :meth:`to_dict` (``ValueError``/``KeyError`` on malformed input)."""
        certificates = load_certificates(str(document["certificate"]).encode())
        if len(certificates) != 1:
            raise ValueError("a checkpoint names exactly one signing certificate")
        return cls(
            tree_size=int(document["tree_size"]),
            root_hash=bytes.fromhex(document["root_hash"]),
            head_hash=bytes.fromhex(document["head_hash"]),
            at=parse_time(document["at"]),
            body=str(document["body"]),
            signature=base64.b64decode(document["signature"], validate=True),
            certificate=_der(certificates[0]),
            chain=str(document.get("chain") or "").encode("ascii"),
            id=document.get("id"),
        )


def _der(certificate: Certificate) -> bytes:
    return certificate.der


def _pem(der: bytes) -> str:
    try:
        return Certificate.from_der(der).pem.decode("ascii")
    except (CertificateError, ValueError):
        return ""


def sign_checkpoint(
    key: CheckpointKey, tree_size: int, root_hash: bytes, head_hash: bytes, at: datetime
) -> Checkpoint:
    """Sign a checkpoint with the repository key (SM2 with SM3, default identity)."""
    body = checkpoint_body(tree_size, root_hash, head_hash, at)
    signature = key.signer.sign(body.encode("utf-8"))
    chain = b"".join(certificate.pem for certificate in key.chain)
    return Checkpoint(tree_size, root_hash, head_hash, at, body, signature, _der(key.certificate), chain)


def checkpoint_from_row(row: AuditCheckpointRow) -> Checkpoint:
    return Checkpoint(
        tree_size=row.tree_size,
        root_hash=bytes(row.root_hash),
        head_hash=bytes(row.head_hash),
        at=row.at,
        body=row.body,
        signature=bytes(row.signature),
        certificate=bytes(row.certificate),
        chain=bytes(row.chain),
        id=row.id,
    )


def checkpoint_row(checkpoint: Checkpoint) -> AuditCheckpointRow:
    return AuditCheckpointRow(
        tree_size=checkpoint.tree_size,
        root_hash=checkpoint.root_hash,
        head_hash=checkpoint.head_hash,
        at=checkpoint.at,
        body=checkpoint.body,
        signature=checkpoint.signature,
        certificate=checkpoint.certificate,
        chain=checkpoint.chain,
    )


def checkpoint_problems(
    checkpoint: Checkpoint,
    *,
    trust: TrustStore | None = None,
    pinned: Iterable[Certificate] = (),
) -> list[str]:
    """Why ``checkpoint`` cannot be relied on (empty: its body matches its fields, the SM2 signature verifies
    and the signer is a pinned certificate or chains to ``trust`` at the checkpoint's time)."""
    problems: list[str] = []
    expected = checkpoint_body(
        checkpoint.tree_size, checkpoint.root_hash, checkpoint.head_hash, checkpoint.at
    )
    if checkpoint.body != expected:
        problems.append("the signed text does not match the checkpoint's fields")
    try:
        certificate = Certificate.from_der(checkpoint.certificate)
    except (CertificateError, ValueError) as exc:
        return [*problems, f"the signing certificate is unreadable: {exc}"]
    if not certificate.public_key.verify(checkpoint.body.encode("utf-8"), checkpoint.signature):
        problems.append(f"the SM2 signature does not verify with the key of {certificate.subject!r}")
    pinned = list(pinned)
    if any(certificate == p for p in pinned):
        return problems
    if trust is None or len(trust) == 0:
        if pinned:
            problems.append(f"signed by {certificate.subject!r}, which is not the repository's certificate")
        else:
            problems.append("no trust anchors or repository certificate to check the signer against")
        return problems
    try:
        intermediates = load_certificates(checkpoint.chain) if checkpoint.chain else []
    except (CertificateError, ValueError):
        intermediates = []
    validation = validate_chain(certificate, trust=trust, at=checkpoint.at, intermediates=intermediates)
    if not validation.ok:
        problems.append(f"the signer {certificate.subject!r} is not trusted: {validation.reason}")
    elif pinned and certificate.subject not in {p.subject for p in pinned}:
        # A renewed repository certificate (same subject, trusted issuer) is accepted; any other is not.
        problems.append(f"signed by {certificate.subject!r}, which is not the repository's certificate")
    return problems


def with_id(checkpoint: Checkpoint, id_: int) -> Checkpoint:
    return replace(checkpoint, id=id_)
