"""``python -m bench verify``: OFD verification per second with p50/p99 latency, and issuance per second.

Everything runs in-process on one core against a throwaway repository (SQLite + files + dev keys):

- **issuance**: face layout + OFD package + seal + store + audit entry, through
  ``certstore.services.certificates.issue`` with the application's file maker (the seal the catalogue type
  names) — the full path an agency push takes (the content changes per certificate, so nothing is served from
  a cache): per second of wall time, and in CPU time per certificate (``issue_system_cpu_ms`` of it in the
  kernel: the blob's fsyncs), once with the type's face template
  (compiled once, ``certstore.packaging.template``) and once with the generic layout (a catalogue version
  without a template), each also for the file alone (face + OFD + seal, ``issue_face_file_cpu_ms``).
- **verification**: ``certstore.verify.verify_file`` on issued OFD files (warm caches: the trust store, parsed
  certificates, certificate signatures, the seal's own signature and the digests of files that recur from
  certificate to certificate — base image, Seal.esl — are memoised, as in a long-running API worker), offline
  (no repository look-up). ``ofd_verify_per_s`` and p50/p99 are in CPU time of the one core (files per
  CPU-second, ms of CPU per file), so that neighbours on a shared machine do not move them;
  ``ofd_verify_wall_per_s`` is the wall-clock rate of the same loop.

Status snapshot (``certstore status snapshot``, :mod:`certstore.verify.status_list`, format 2: the versions not in
force with their effective times): for 1 M listed versions (``…_1m_…``) and for the snapshot of a 10 M-version
repository with 5 % not in force, i.e. 500 k listed versions (``…_10m_5pct_…``; each with one ended suspension per
hundred versions): the time to build and sign it (``status_snapshot_build_*_s``: fingerprints, sort, zlib, SM2
signature; the entries are made beforehand), its size (``status_snapshot_*_bytes``), the time to read and verify
it as a counter does (``status_snapshot_read_*_s``: signature, chain, inflate, bucket offsets) and the cost of one
look-up in the 1 M list (``status_lookup_us``: a binary search in one of 65 536 fingerprint buckets; listed and
unlisted identifiers). Quick (smoke) mode uses a tenth of the entries.

Reference measured in the same run: ``SM2PublicKey.verify`` per CPU-second on this machine (one SES signature
needs one SM2 verification when caches are warm), so ``verify_vs_sm2_ratio`` tells how close the whole
verification gets to its cryptographic floor.
"""

from __future__ import annotations

import io
import os
import random
import statistics
import tempfile
import time
import zipfile
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

from bench import BenchContext, Results, register, single_cpu
from bench._setup import bench_call, prepared_data_dir
from bench.crypto import cpu_rate
from certstore.app import Application
from certstore.catalogue import CatalogueEntry, base_image_path
from certstore.crypto.sm2 import SM2PrivateKey
from certstore.lifecycle import Status
from certstore.packaging.base_image import embedded_base_image
from certstore.packaging.layout import FaceData
from certstore.records import example_draft, prepare_version
from certstore.services import certificates
from certstore.services.catalogue import get_entry, register_entry
from certstore.services.issuance import make_ofd
from certstore.verify import verify_file
from certstore.verify.status_list import build_status_list, read_status_list

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
        before = os.times()
        issue_cpu = cpu_rate(issue_one, ctx.pick(full=4.0, quick=1.0))
        # the kernel's share (the blob's fsyncs, the database file): cpu_rate's warm-up call included
        issue_system_ms = (os.times().system - before.system) / (issue_cpu.calls + 1) * 1000
        face_cpu = _face_file_cpu(ctx, app, entry)

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
        sizes = _file_sizes(entry, files[0])
        ctx.log(
            f"file size: {sizes['ofd_bytes']} bytes; base image embedded in {sizes['ofd_base_image_bytes']} bytes "
            f"(the catalogue's PNG: {sizes['catalogue_base_image_bytes']}), so "
            f"{sizes['ofd_bytes_with_catalogue_base_image']} bytes with the PNG as given"
        )

        sm2_key = SM2PrivateKey.generate()
        message = os.urandom(1024)
        signature = sm2_key.sign(message)
        sm2 = cpu_rate(lambda: sm2_key.public_key.verify(message, signature), ctx.pick(full=2.0, quick=0.3))
        ratio = verifying.per_s / sm2.per_s
        ctx.log(
            f"reference: SM2 verify {sm2.per_s:.0f}/s → whole-file verification at {ratio:.2f} of that floor"
        )
        snapshot = _status_snapshot(ctx, app)
        # the same issuance with the generic label/value layout (a catalogue version without a face template)
        generic, _ = register_entry(repo, _without_template(entry))
        generic_issue_cpu = cpu_rate(issue_one, ctx.pick(full=4.0, quick=1.0))
        generic_face_cpu = _face_file_cpu(ctx, app, generic)
        ctx.log(
            f"issuance CPU per certificate ({entry.name}, one core): face template {issue_cpu.us_per_call / 1000:.2f} "
            f"ms ({issue_system_ms:.2f} ms of it in the kernel; face + OFD + seal {face_cpu * 1000:.2f} ms), generic "
            f"layout {generic_issue_cpu.us_per_call / 1000:.2f} ms (face + OFD + seal {generic_face_cpu * 1000:.2f} ms);"
            " target 2.5 ms"
        )
        app.close()
    return (
        snapshot
        | {
            "ofd_verify_per_s": verifying.per_s,
            "ofd_verify_wall_per_s": wall.per_s,
            "verify_p50_ms": p50,
            "verify_p99_ms": p99,
            "issue_per_s": issuing.per_s,
            "issue_cpu_ms": issue_cpu.us_per_call / 1000,
            "issue_system_cpu_ms": issue_system_ms,
            "issue_face_file_cpu_ms": face_cpu * 1000,
            "issue_generic_cpu_ms": generic_issue_cpu.us_per_call / 1000,
            "issue_generic_face_file_cpu_ms": generic_face_cpu * 1000,
            "sm2_verify_per_s": sm2.per_s,
            "verify_vs_sm2_ratio": ratio,
        }
        | sizes
    )


def _without_template(entry: CatalogueEntry) -> CatalogueEntry:
    """The next version of ``entry`` without its face template: the generic layout, for the comparison."""
    return replace(entry, version=entry.version + 1, face_template=None)


def _face_file_cpu(ctx: BenchContext, app: Application, entry: CatalogueEntry) -> float:
    """CPU seconds per sealed OFD of ``entry`` made from a prepared version — face layout, OFD package, seal
    (what a face template speeds up), without the database, the blob store and the audit entry."""
    key = app.sealing_key(entry)
    base = example_draft(entry, issue_date=date(2026, 11, 26))
    data = []
    for n in range(int(ctx.pick(full=400, quick=60))):
        draft = replace(base, certificate_number=f"4101002024061{n:05d}"[:18])
        prepared = prepare_version(
            entry, draft, version=1, holder_key=os.urandom(32), serial_key=os.urandom(32)
        )
        data.append(FaceData.from_prepared(prepared))
    base_url = app.sealing_base_url()
    make_ofd(data[0], key, verify_base_url=base_url)
    start = time.process_time()
    for face in data:
        make_ofd(face, key, verify_base_url=base_url)
    return (time.process_time() - start) / len(data)


def _file_sizes(entry: CatalogueEntry, data: bytes) -> Results:
    """The issued file's size, its base image's as embedded (:func:`embedded_base_image`) and as the catalogue
    ships it, and the size the file would have with the catalogue's PNG (the writer stores PNGs uncompressed, so
    the difference is exactly the difference of the two images)."""
    path = base_image_path(entry)
    if path is None:
        raise RuntimeError(f"{entry.name} has no base image")
    catalogue = path.read_bytes()
    embedded = embedded_base_image(catalogue)
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        stored = [info for info in package.infolist() if package.read(info) == embedded]
    if len(stored) != 1 or stored[0].compress_size != stored[0].file_size:
        raise RuntimeError("the base image is not stored once, uncompressed, in the benchmark file")
    return {
        "ofd_bytes": len(data),
        "ofd_base_image_bytes": len(embedded),
        "catalogue_base_image_bytes": len(catalogue),
        "ofd_bytes_with_catalogue_base_image": len(data) - len(embedded) + len(catalogue),
    }


SNAPSHOT_ENTRIES = 1_000_000
#: The 10 M-version repository's snapshot: 5 % of its versions not in force, which is all a snapshot lists.
SNAPSHOT_10M_LISTED = 500_000
_LISTED_MIX = (
    [Status.SUPERSEDED] * 5 + [Status.REVOKED] * 2 + [Status.CANCELLED, Status.SUSPENDED, Status.ANNULLED]
)


def _snapshot_entries(count: int, now: datetime) -> list[tuple[str, Status, datetime]]:
    """``count`` versions not in force, their status effective at a random second of the last five years."""
    rng = random.Random(count)
    span = 5 * 365 * 86_400
    return [
        (
            f"1.2.156.3005.2.{CATALOGUE}.11410100990000025A.{i:032X}.001.X",
            _LISTED_MIX[i % len(_LISTED_MIX)],
            now - timedelta(seconds=rng.randrange(1, span)),
        )
        for i in range(count)
    ]


def _status_snapshot(ctx: BenchContext, app: Application) -> Results:
    key = app.repository_sealing_key()
    now = app.now().replace(microsecond=0)
    options = {
        "issuer": "bench",
        "sequence": 1,
        "this_update": now,
        "next_update": now + timedelta(hours=24),
        "signer": key.signer,
        "certificate": key.certificate,
        "chain": [c for c in key.chain if c != key.certificate],
        "scope": ["11410100990000025A"],
    }
    results: Results = {}
    scale = int(ctx.pick(full=1, quick=10))  # quick (smoke) mode: a tenth of the entries
    for label, count in (("1m", SNAPSHOT_ENTRIES // scale), ("10m_5pct", SNAPSHOT_10M_LISTED // scale)):
        entries = _snapshot_entries(count, now)
        ended = [
            (name, since - timedelta(days=30), since - timedelta(days=20))
            for name, _, since in entries[::100]
        ]
        start = time.perf_counter()
        data = build_status_list(entries, suspensions=ended, versions=count * 20, **options)  # type: ignore[arg-type]
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        listed = read_status_list(data, trust=app.trust, expected=[key.certificate])
        read_s = time.perf_counter() - start
        in_force = [
            f"1.2.156.3005.2.{CATALOGUE}.11410100990000025A.{count + i:032X}.001.X" for i in range(1000)
        ]
        if any(listed.lookup(name).status is not status for name, status, _ in entries[:1000]) or not all(
            listed.lookup(name).in_force for name in in_force
        ):
            raise RuntimeError("status snapshot look-up returned a wrong status")
        probes = [entries[(i * 7919) % count][0] for i in range(int(ctx.pick(full=100_000, quick=10_000)))]
        probes += in_force
        start = time.perf_counter()
        for name in probes:
            listed.lookup(name)
        lookup_us = (time.perf_counter() - start) / len(probes) * 1e6
        ctx.log(
            f"status snapshot ({label}): {count} versions not in force (+{len(ended)} ended suspensions) built "
            f"and signed in {build_s:.2f} s, {len(data) / 1e6:.2f} MB ({len(data) / count:.2f} bytes per listed "
            f"version), read and verified in {read_s:.3f} s, look-up {lookup_us:.1f} µs"
        )
        results |= {
            f"status_snapshot_build_{label}_s": build_s,
            f"status_snapshot_{label}_bytes": len(data),
            f"status_snapshot_read_{label}_s": read_s,
        }
        if label == "1m":
            results["status_lookup_us"] = lookup_us
    return results
