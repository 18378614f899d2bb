"""Child process of the spool test: acknowledges audit events through an :class:`AuditTrail` whose database
writer is stalled (as when the database is slow or away), prints how many were acknowledged, then dies by SIGKILL
— a crash with every acknowledged event only in the spool file.

Usage: python -m tests.audit.crash_writer DATABASE_URL SPOOL_DIR COUNT
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from certstore.audit import AuditTrail
from certstore.store.db import Database
from tests.audit.conftest import event


def main() -> None:
    url, spool_dir, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    trail = AuditTrail(Database(url), spool_dir=spool_dir)
    trail._writer_loop = lambda: time.sleep(3600)  # type: ignore[method-assign]  # the database never gets them
    trail.start()
    threads = [
        threading.Thread(target=trail.submit, args=(event(i, request_id=f"crash-{i}"),)) for i in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"acknowledged {trail.stats.accepted}", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    main()
