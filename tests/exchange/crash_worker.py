"""Child process of the exchange crash test: runs exchange cycles of one source in a loop until killed.

Usage: python -m tests.exchange.crash_worker DATA_DIR FRONTEND_URL SEED  (repository from CERTSTORE_DATABASE_URL)

Small random batches make commits frequent, so a SIGKILL lands anywhere: mid-batch, between the repository
commit and the receipts, inside a per-version transaction. Half of the workers seal with a fast stand-in file
maker, so versions also take the sealed path (files stored first, a run of sealed versions per transaction; a
failing run split one row per transaction); half of those seal on a pool of two processes (the files stored
by its threads).
"""

from __future__ import annotations

import random
import sys
import time
from datetime import timedelta
from pathlib import Path

from certstore.app import Application
from certstore.exchange.sealing import SealingPool, fixed_sealer
from certstore.exchange.worker import ExchangeSource, LeaseHeldError, run_cycle
from certstore.records import PreparedVersion
from certstore.store.blobs.files import FileBlobStore
from tests.exchange.support import ISSUER


def stand_in_file(prepared: PreparedVersion) -> tuple[bytes, str]:
    return f"file of {prepared.identifier}\n".encode() * 50, "application/octet-stream"


def main() -> None:
    data_dir, url, seed = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    app = Application.open(data_dir)
    source = ExchangeSource("crash-fe", url, ISSUER)
    maker = stand_in_file if rng.random() < 0.5 else None
    # a pool for half of the sealing workers; of those, half store in the workers (a file store: picklable)
    workers_store = isinstance(app.repo.blobs, FileBlobStore) and rng.random() < 0.5
    pool = (
        SealingPool(
            fixed_sealer(stand_in_file, blobs=app.repo.blobs if workers_store else None),
            2,
            blobs=app.repo.blobs,
        )
        if maker is not None and rng.random() < 0.5
        else None
    )
    print("ready", flush=True)
    while True:
        try:
            run_cycle(
                app, source, file_maker=maker, worker=f"crash-{seed}", batch_size=rng.randint(1, 25),
                lease=timedelta(seconds=1), gap_grace=timedelta(minutes=10), sealer=pool,
            )  # fmt: skip
        except LeaseHeldError:  # the killed predecessor's lease has not expired yet
            time.sleep(0.1)
        time.sleep(rng.uniform(0, 0.05))


if __name__ == "__main__":
    main()
