"""``python -m bench verify``: OFD verification per second with p50/p99 latency, and issuance per second.

Everything runs in-process on one core against a throwaway repository (SQLite + files + dev keys):

- **issuance**: face layout + OFD package + seal + store + audit entry, through
  ``certstore.services.certificates.issue`` with the application's file maker (the seal the catalogue type
  names) — the full path an agency push takes (the content changes per certificate, so nothing is served from
  a cache).
- **verification**: ``certstore.verify.verify_file`` on issued OFD files (warm caches: the trust store, parsed
  certificates, certificate signatures, the seal's own signature and the digests of files that recur from
  certificate to certificate — base image, Seal.esl — are memoised, as in a long-running API worker), offline
  (no repository look-up). ``ofd_verify_per_s`` and p50/p99 are in CPU time of the one core (files per
  CPU-second, ms of CPU per file), so that neighbours on a shared machine do not move them;
  ``ofd_verify_wall_per_s`` is the wall-clock rate of the same loop.

Status snapshot (``certstore status snapshot``, :mod:`certstore.verify.status_list`): the time to build and sign
the snapshot of 1 M synthetic certificate versions (``status_snapshot_build_1m_s``: fingerprints, sort, zlib,
SM2 signature; the identifiers are made beforehand), its size (``status_snapshot_1m_bytes``), the time to read
and verify it as a counter does (``status_snapshot_read_1m_s``: signature, chain, inflate) and the cost of one
look-up (``status_lookup_us``: binary search over the sorted fingerprints).

Reference measured in the same run: ``SM2PublicKey.verify`` per CPU-second on this machine (one SES signature
needs one SM2 verification when caches are warm), so ``verify_vs_sm2_ratio`` tells how close the whole
verification gets to its cryptographic floor.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

from bench import BenchContext, Results, register, single_cpu
from bench._setup import bench_call, prepared_data_dir
from bench.crypto import cpu_rate
from certstore.app import Application
from certstore.crypto.sm2 import SM2PrivateKey
from certstore.lifecycle import Status
from certstore.records import example_draft
from certstore.services import certificates
from certstore.services.catalogue import get_entry
from certstore.verify import verify_file
from certstore.verify.status_list import STATUS_CODES, build_status_list, read_status_list

CATALOGUE = "11410100990000025A001"  # 建筑工程施工许可证: the densest face of the shipped types


@register(
    "verify", "OFD verifications per second (p50/p99) and issuance (layout + OFD + seal + store) per second"
)
def verify(ctx: BenchContext) -> Results:
    with tempfile.TemporaryDirectory(prefix="certstore-bench-") as tmp, single_cpu():
        app = prepared_data_dir(Path(tmp), {})
        repo = app.repo
        entry = get_entry(repo, CATALOGUE)
        base = example_draft(entry, issue_date=date(2026, 11, 26))
        counter = iter(range(10**9))
        call = bench_call("verify")

        def issue_one() -> None:
            n = next(counter)
            number = f"4101002024061{n:05d}"[:18]
            draft = replace(base, certificate_number=number)
            certificates.issue(app, call, draft)

        issuing = ctx.rate(issue_one, seconds=ctx.pick(full=8.0, quick=1.0))
        ctx.log(f"issuance: {issuing.per_s:.1f} certificates/s ({issuing.us_per_call / 1000:.1f} ms each)")

        files = [repo.blobs.get(key) for key in list(repo.blobs.iter_keys())[:50]]
        trust = app.trust
        report = verify_file(files[0], trust=trust)
        if report.indication.value != "VALID":
            raise RuntimeError(f"benchmark file does not verify: {report.to_dict()}")
        index = iter(range(10**9))

        def verify_one() -> None:
            verify_file(files[next(index) % len(files)], trust=trust)

        verifying = cpu_rate(verify_one, ctx.pick(full=6.0, quick=1.0))
        wall = ctx.rate(verify_one, seconds=ctx.pick(full=2.0, quick=0.3))
        latencies = []
        for i in range(int(ctx.pick(full=2000, quick=200))):
            start = time.process_time()
            verify_file(files[i % len(files)], trust=trust)
            latencies.append((time.process_time() - start) * 1000)
        latencies.sort()
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        ctx.log(f"verification: {verifying.per_s:.0f} files per CPU-second, p50 {p50:.2f} ms, p99 {p99:.2f} ms of "
                f"CPU ({len(files[0]) / 1024:.0f} KiB OFD); wall clock {wall.per_s:.0f} files/s")  # fmt: skip

        sm2_key = SM2PrivateKey.generate()
        message = os.urandom(1024)
        signature = sm2_key.sign(message)
        sm2 = cpu_rate(lambda: sm2_key.public_key.verify(message, signature), ctx.pick(full=2.0, quick=0.3))
        ratio = verifying.per_s / sm2.per_s
        ctx.log(
            f"reference: SM2 verify {sm2.per_s:.0f}/s → whole-file verification at {ratio:.2f} of that floor"
        )
        snapshot = _status_snapshot(ctx, app)
        app.close()
    return snapshot | {
        "ofd_verify_per_s": verifying.per_s,
        "ofd_verify_wall_per_s": wall.per_s,
        "verify_p50_ms": p50,
        "verify_p99_ms": p99,
        "issue_per_s": issuing.per_s,
        "sm2_verify_per_s": sm2.per_s,
        "verify_vs_sm2_ratio": ratio,
        "ofd_bytes": len(files[0]),
    }


SNAPSHOT_ENTRIES = 1_000_000


def _status_snapshot(ctx: BenchContext, app: Application) -> Results:
    key = app.repository_sealing_key()
    statuses = list(STATUS_CODES)
    # mostly valid, as in a real repository; every stored status occurs
    entries = [
        (f"1.2.156.3005.2.{CATALOGUE}.11410100990000025A.{i:032X}.001.X", Status.VALID if i % 10 else statuses[i % 7 % 6])
        for i in range(SNAPSHOT_ENTRIES)
    ]  # fmt: skip
    now = app.now()
    start = time.perf_counter()
    data = build_status_list(
        entries,
        issuer="bench",
        sequence=1,
        this_update=now,
        next_update=now + timedelta(hours=24),
        signer=key.signer,
        certificate=key.certificate,
        chain=[c for c in key.chain if c != key.certificate],
    )
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    listed = read_status_list(data, trust=app.trust, expected=[key.certificate])
    read_s = time.perf_counter() - start
    probes = [
        entries[(i * 7919) % SNAPSHOT_ENTRIES] for i in range(int(ctx.pick(full=200_000, quick=20_000)))
    ]
    if any(listed.lookup(identifier) is not status for identifier, status in probes[:1000]):
        raise RuntimeError("status snapshot look-up returned a wrong status")
    start = time.perf_counter()
    for identifier, _ in probes:
        listed.lookup(identifier)
    lookup_us = (time.perf_counter() - start) / len(probes) * 1e6
    ctx.log(
        f"status snapshot: 1 M versions built and signed in {build_s:.2f} s, {len(data) / 1e6:.1f} MB "
        f"({len(data) / SNAPSHOT_ENTRIES:.2f} bytes per version), read and verified in {read_s:.3f} s, "
        f"look-up {lookup_us:.1f} µs"
    )
    return {
        "status_snapshot_build_1m_s": build_s,
        "status_snapshot_1m_bytes": len(data),
        "status_snapshot_read_1m_s": read_s,
        "status_lookup_us": lookup_us,
    }
