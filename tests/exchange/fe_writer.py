"""An agency's system, as an independent process writing its front-end database with FrontendWriter.

Usage:
  python -m tests.exchange.fe_writer URL integration   — a fixed set of rows (good and bad); prints the seqs as JSON
  python -m tests.exchange.fe_writer URL stream N SEED  — N operations on interleaved certificates (new versions and
                                                          status changes in a causal order), then prints "done"
"""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta

from certstore.exchange.frontend import FrontendWriter
from tests.exchange.support import ISSUER, OTHER_CATALOGUE, document, number

OTHER_ISSUER = "11410100990000025A"


def integration(writer: FrontendWriter) -> dict[str, int]:
    completed = datetime.now(UTC) - timedelta(hours=1)
    other = document(5, catalogue=OTHER_CATALOGUE)
    seqs = {
        "v1": writer.certificate(ISSUER, number(1), 1, document(1), channel="online", completed_at=completed),
        "second": writer.certificate(
            ISSUER, number(2), 1, document(2), channel="offline", completed_at=completed
        ),
        "v2": writer.certificate(
            ISSUER, number(1), 2, document(1, 2), channel="online", completed_at=completed
        ),
        "bad_json": writer.certificate(ISSUER, number(3), 1, "{not json", channel="online"),
        "bad_holder": writer.certificate(
            ISSUER,
            number(4),
            1,
            document(4, holder={**document(4)["holder"], "id_number": "91410100MA44A1B2X0"}),
        ),
        "other_type": writer.certificate(
            ISSUER, other["certificate_number"], 1, other, channel="bulk", completed_at=completed
        ),
        "other_issuer": writer.certificate(OTHER_ISSUER, number(6), 1, document(6)),
        "repeat": writer.certificate(
            ISSUER, number(2), 1, document(2), channel="offline", completed_at=completed
        ),
        "suspend": writer.status_change(ISSUER, number(2), "suspend", "整改期间暂停"),
        "unknown": writer.status_change(ISSUER, number(99), "revoke", "不存在"),
    }
    return seqs


def stream(writer: FrontendWriter, operations: int, seed: int) -> None:
    """Certificates move through v1 … vK, then status changes of vK (suspend/resume pairs, maybe a final
    revoke/cancel/annul), naming vK or "the latest" at random; several certificates interleave."""
    rng = random.Random(seed)
    plans: dict[int, list[tuple[str, int | str]]] = {}
    last_version: dict[int, int] = {}
    next_id = 1000 + seed % 90 * 1000  # number() has five digits
    for done in range(operations):
        if len(plans) < 8:
            k = rng.randint(1, 3)
            steps: list[tuple[str, int | str]] = [("version", v) for v in range(1, k + 1)]
            for _ in range(rng.randint(0, 2)):
                steps += [("status", "suspend"), ("status", "resume")]
            if rng.random() < 0.3:
                steps.append(("status", rng.choice(["revoke", "cancel", "annul"])))
            plans[next_id] = steps
            next_id += 1
        i = rng.choice(sorted(plans))
        kind, value = plans[i].pop(0)
        if kind == "version":
            version = int(value)
            writer.certificate(ISSUER, number(i), version, document(i, version), channel="offline")
            last_version[i] = version
        else:
            named = last_version[i] if rng.random() < 0.5 else None
            writer.status_change(ISSUER, number(i), str(value), f"step {done}", version=named)
        if not plans[i]:
            del plans[i]
        time.sleep(rng.uniform(0, 0.004))
    print("done", flush=True)


def main() -> None:
    url, mode = sys.argv[1], sys.argv[2]
    with FrontendWriter(url) as writer:
        if mode == "integration":
            print(json.dumps(integration(writer)), flush=True)
        elif mode == "stream":
            stream(writer, int(sys.argv[3]), int(sys.argv[4]))
        else:
            raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
