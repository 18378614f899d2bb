"""Child process of the crash test: issues certificates in a loop and acknowledges each one on stdout only
after its transaction committed. The parent SIGKILLs it at random moments.

Usage: python -m tests.services.crash_worker DATA_DIR START COUNT  (database from CERTSTORE_DATABASE_URL)
"""

from __future__ import annotations

import random
import sys
import time
from datetime import date
from pathlib import Path

from certstore.catalogue.definitions import example_face, shipped_entries
from certstore.identifiers import HolderIdType
from certstore.records import CertificateDraft, Holder
from certstore.store.blobs import BlobRef, BlobStore
from certstore.store.repository import Repository
from tests.support import issuing

CATALOGUE = "11410100990000017F002"  # 建设用地规划许可证


def number(i: int) -> str:
    return f"地字第4101002026{i:05d}号"


class SlowBlobs:
    """Wraps the real blob store and widens the window between "blob written" and "row committed", so random
    kills land in it often (on a fast disk the window is a few hundred microseconds)."""

    def __init__(self, inner: BlobStore) -> None:
        self._inner = inner

    def put(self, data: bytes, *, media_type: str = "application/octet-stream") -> BlobRef:
        ref = self._inner.put(data, media_type=media_type)
        time.sleep(random.uniform(0, 0.02))
        return ref

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def main() -> None:
    data_dir, start, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    repo = Repository.open(data_dir)
    repo.blobs = SlowBlobs(repo.blobs)  # type: ignore[assignment]
    entry = next(e for e in shipped_entries() if e.code == CATALOGUE)
    face = example_face(entry)
    holder = Holder("郑州示例置业有限公司", HolderIdType.CREDIT_CODE, "91410100MA44A1B2XW")
    print("ready", flush=True)
    for i in range(start, start + count):
        draft = CertificateDraft(
            catalogue_code=entry.code,
            certificate_number=number(i),
            holder=holder,
            face=face,
            issue_date=date(2026, 11, 26),
        )
        # A distinct file per certificate, large enough that the blob write takes a moment.
        file = f"certificate file {i}\n".encode() * 20_000
        result = issuing.issue(repo, draft, file=file, file_media_type="application/ofd")
        time.sleep(random.uniform(0, 0.005))  # committed but not yet acknowledged: also a place to die
        print(f"{i} {result.certificate.identifier} {int(result.created)}", flush=True)


if __name__ == "__main__":
    main()
