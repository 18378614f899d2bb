"""Batch pushes (批量推送) on SQLite and PostgreSQL: per-item results, idempotency, crash and resume, leases
raced and expired, organisation scoping, the background runner; and many identical single pushes at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from certstore.access import AccessDeniedError, Actor, Principal, Role
from certstore.keystore import KeyStore
from certstore.records import PreparedVersion, draft_to_json
from certstore.services import access, certificates
from certstore.services.batches import (
    MAX_BATCH_ITEMS,
    BatchError,
    BatchJob,
    BatchLeaseError,
    BatchNotFoundError,
    BatchRunner,
    get_batch,
    process_batch,
    resumable_jobs,
    submit_batch,
)
from certstore.services.calls import Via
from certstore.services.certificates import NO_FILE, FileMaker
from certstore.services.deadlines import Channel, get_arrival
from certstore.services.issuance import catalogue_file_maker
from certstore.services.keys import init_dev_keys
from certstore.store.models import ArrivalRow, BatchJobRow, CertificateRow
from certstore.store.repository import Repository
from certstore.verify import verify_file
from tests.services.conftest import CREDIT_CODES, Clock, DraftMaker
from tests.support import issuing

# 郑州市自然资源和规划局 issues the three planning types …17F001/2/3; 城乡建设局 issues the construction permit.
ISSUER = "11410100990000017F"
SITE_SELECTION = "11410100990000017F001"
CONSTRUCTION_PERMIT = "11410100990000025A001"
AGENCY = Principal(1, "batch-bot", Role.AGENCY, ISSUER, "郑州市自然资源和规划局")
OTHER_AGENCY = Principal(2, "batch-bot", Role.AGENCY, "11410100990000025A", "郑州市城乡建设局")

Document = dict[str, Any]


def number(i: int) -> str:
    return f"选字第4101002026{i:05d}号"


@pytest.fixture
def documents(draft: DraftMaker) -> Callable[[int], list[Document]]:
    """``documents(n)``: n valid, distinct site-selection documents (DATA.json form)."""

    def make(n: int) -> list[Document]:
        return [draft_to_json(draft(SITE_SELECTION, number(i))) for i in range(n)]

    return make


def fake_file(prepared: PreparedVersion) -> tuple[bytes, str]:
    """A stand-in for the sealed OFD, cheap to make (content does not enter the idempotency digest)."""
    return f"%OFD stand-in for {prepared.identifier}".encode(), "application/ofd"


def row_count(repo: Repository) -> int:
    with repo.db.session() as session:
        return session.scalar(select(func.count()).select_from(CertificateRow)) or 0


def submit(repo: Repository, documents: Any, *, principal: Principal = AGENCY) -> BatchJob:
    """Submit as ``principal`` through the API (its call, entry point api)."""
    return submit_batch(issuing.application(repo), issuing.call(Actor.of(principal), via=Via.API), documents)


def process(repo: Repository, job_id: str, file_maker: FileMaker = NO_FILE, worker: str = "w1") -> BatchJob:
    return process_batch(issuing.application(repo), job_id, file_maker=file_maker, worker=worker)


def statuses(repo: Repository, job_id: str) -> list[str]:
    return [item.status for item in get_batch(repo, job_id, with_items=True).items]


# --- results -------------------------------------------------------------------------------------------------


def test_mixed_batch(repo: Repository, draft: DraftMaker) -> None:
    valid = draft_to_json(draft(SITE_SELECTION, number(1)))
    bad_face = draft_to_json(draft(SITE_SELECTION, number(2), face={}))
    not_ours = draft_to_json(draft(CONSTRUCTION_PERMIT))
    unknown = {**draft_to_json(draft(SITE_SELECTION, number(3))), "catalogue": "99999999999999999999"}
    other = {"name": "郑州另一置业有限公司", "id_type": "001", "id_number": CREDIT_CODES[1]}
    conflict = {**valid, "holder": other}  # same number, other (valid) content
    other_valid = draft_to_json(draft(SITE_SELECTION, number(4)))
    documents: list[Any] = [valid, bad_face, not_ours, valid, unknown, conflict, "not an object", other_valid]

    job = submit(repo, documents)
    assert (job.status, job.total, job.succeeded, job.failed, job.pending) == ("queued", 8, 0, 0, 8)
    assert job.submitted_by == AGENCY.ref and job.organisation_code == ISSUER and job.items == ()

    done = process(repo, job.id)
    assert (done.status, done.succeeded, done.failed, done.pending) == ("done", 3, 5, 0)
    items = get_batch(repo, job.id, with_items=True).items
    assert [i.position for i in items] == list(range(8))
    assert [i.status for i in items] == [
        "issued", "rejected", "rejected", "existing", "rejected", "rejected", "rejected", "issued",
    ]  # fmt: skip
    assert items[0].identifier is not None and items[3].identifier == items[0].identifier
    assert items[0].error is None and items[7].identifier not in (None, items[0].identifier)
    for item in (items[1], items[2], items[4], items[5], items[6]):
        assert item.identifier is None
        assert item.error is not None and set(item.error) == {"title", "detail", "problems"}
        assert item.error["title"] and item.error["detail"] and item.error["problems"]
        assert all(isinstance(p, list) and len(p) == 2 for p in item.error["problems"])
    assert any(path.startswith("face") for path, _ in items[1].error["problems"])  # type: ignore[index]
    assert "11410100990000025A" in items[2].error["detail"] and ISSUER in items[2].error["detail"]  # type: ignore[index]
    assert items[2].error["problems"][0][0] == "catalogue"  # type: ignore[index]
    assert items[4].error["title"] == "unknown catalogue type"  # type: ignore[index]
    assert "different content" in items[5].error["detail"]  # type: ignore[index]
    assert items[6].error["problems"] == [["$", "not an object"]]  # type: ignore[index]

    assert row_count(repo) == 2
    cert = certificates.get(repo, items[0].identifier or "")
    assert cert.events[0].actor == AGENCY.ref  # issued in the submitter's name, not the worker's
    assert resumable_jobs(repo) == []


def test_resubmission_is_idempotent(repo: Repository, documents: Callable[[int], list[Document]]) -> None:
    batch = documents(5)
    first = process(repo, submit(repo, batch).id)
    second = process(repo, submit(repo, batch).id)
    assert first.succeeded == second.succeeded == 5
    assert statuses(repo, first.id) == ["issued"] * 5 and statuses(repo, second.id) == ["existing"] * 5
    identifiers = [i.identifier for i in get_batch(repo, first.id, with_items=True).items]
    assert [i.identifier for i in get_batch(repo, second.id, with_items=True).items] == identifiers
    assert row_count(repo) == 5
    assert process(repo, first.id).status == "done"  # a finished job is returned as it is
    assert row_count(repo) == 5


def test_submit_validates_the_batch(repo: Repository, documents: Callable[[int], list[Document]]) -> None:
    with pytest.raises(BatchError, match="1 to 1000"):
        submit(repo, [])
    with pytest.raises(BatchError, match="not 1001"):
        submit(repo, [{}] * (MAX_BATCH_ITEMS + 1))
    with pytest.raises(BatchError, match="list"):
        submit(repo, documents(1)[0])  # type: ignore[arg-type]
    with pytest.raises(BatchError, match="item 1"):
        submit(repo, [*documents(1), {"face": {"x": float("nan")}}])
    window = Principal(3, "clerk", Role.WINDOW, ISSUER, "郑州市自然资源和规划局")
    with pytest.raises(AccessDeniedError):
        submit(repo, documents(1), principal=window)
    with repo.db.session() as session:
        assert session.scalar(select(func.count()).select_from(BatchJobRow)) == 0
    assert submit(repo, [{}] * MAX_BATCH_ITEMS).total == MAX_BATCH_ITEMS


def test_get_batch_is_scoped_to_the_organisation(
    repo: Repository, documents: Callable[[int], list[Document]]
) -> None:
    job = submit(repo, documents(1))
    assert get_batch(repo, job.id, organisation_code=ISSUER).id == job.id
    with pytest.raises(BatchNotFoundError) as other:
        get_batch(repo, job.id, organisation_code=OTHER_AGENCY.organisation_code)
    assert str(other.value) == f"no batch job {job.id}"  # the same answer as for an id that does not exist
    with pytest.raises(BatchNotFoundError, match="no batch job 00000000-"):
        get_batch(repo, "00000000-0000-4000-8000-000000000000", organisation_code=ISSUER)
    with pytest.raises(BatchNotFoundError):
        process(repo, "00000000-0000-4000-8000-000000000000")


# --- crashes and leases ----------------------------------------------------------------------------------


class CrashError(Exception):
    """An unexpected failure (the database or the sealing device went away)."""


def test_crash_in_flight_resumes_without_duplicates(
    repo: Repository, documents: Callable[[int], list[Document]]
) -> None:
    job = submit(repo, documents(6))
    calls = 0

    def crashing(prepared: PreparedVersion) -> tuple[bytes, str]:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise CrashError("sealing device unplugged")
        return fake_file(prepared)

    with pytest.raises(CrashError):
        process(repo, job.id, crashing)
    assert statuses(repo, job.id) == ["issued", "issued", "pending", "pending", "pending", "pending"]
    interrupted = get_batch(repo, job.id)
    assert (interrupted.status, interrupted.succeeded, interrupted.pending) == ("running", 2, 4)
    assert row_count(repo) == 2
    assert resumable_jobs(repo) == [job.id]  # the lease was given up: any worker may resume at once

    done = process(repo, job.id, fake_file, worker="w2")
    assert (done.status, done.succeeded, done.failed) == ("done", 6, 0)
    assert statuses(repo, job.id) == ["issued"] * 6
    assert row_count(repo) == 6


def test_crash_between_certificate_and_item_commit(
    repo: Repository, documents: Callable[[int], list[Document]], clock: Clock
) -> None:
    """The certificate row is committed but the worker dies before recording the item: the item stays
    pending, and the retry finds the certificate (existing), never a second one."""
    job = submit(repo, documents(4))
    real_blobs = repo.blobs

    class DyingBlobs:
        checks = 0

        def exists(self, key: str) -> bool:  # called by issue right after its commit
            self.checks += 1
            if self.checks == 2:
                raise CrashError("process killed")
            return real_blobs.exists(key)

        def __getattr__(self, name: str) -> Any:
            return getattr(real_blobs, name)

    repo.blobs = DyingBlobs()  # type: ignore[assignment]
    with pytest.raises(CrashError):
        process(repo, job.id, fake_file)
    repo.blobs = real_blobs
    assert statuses(repo, job.id) == ["issued", "pending", "pending", "pending"]
    assert row_count(repo) == 2  # item 1's certificate is stored

    done = process(repo, job.id, fake_file, worker="w2")
    assert (done.status, done.succeeded) == ("done", 4)
    assert statuses(repo, job.id) == ["issued", "existing", "issued", "issued"]
    assert row_count(repo) == 4


def test_two_workers_race_for_one_job(repo: Repository, documents: Callable[[int], list[Document]]) -> None:
    job = submit(repo, documents(3))
    workers = 8
    barrier = threading.Barrier(workers)
    losers_done = threading.Event()
    lock = threading.Lock()
    results: dict[str, object] = {}

    def slow_file(prepared: PreparedVersion) -> tuple[bytes, str]:
        losers_done.wait(timeout=30)  # the winner holds the lease until every other worker has tried
        return fake_file(prepared)

    def run(name: str) -> None:
        barrier.wait(timeout=30)
        try:
            outcome: object = process(repo, job.id, slow_file, worker=name)
        except BatchLeaseError as exc:
            outcome = exc
        with lock:
            results[name] = outcome
            if sum(isinstance(r, BatchLeaseError) for r in results.values()) == workers - 1:
                losers_done.set()

    threads = [threading.Thread(target=run, args=(f"w{i}",)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    winners = [r for r in results.values() if isinstance(r, BatchJob)]
    assert len(results) == workers and len(winners) == 1
    assert winners[0].status == "done" and winners[0].succeeded == 3
    assert row_count(repo) == 3


def test_expired_lease_is_taken_over(
    repo: Repository, documents: Callable[[int], list[Document]], clock: Clock
) -> None:
    """Worker A stalls in item 1 past its lease; B takes the job over and finishes it; A, waking up, finds its
    certificate already stored, records nothing twice and stops."""
    job = submit(repo, documents(4))
    taken_over: list[BatchJob] = []

    def stalling(prepared: PreparedVersion) -> tuple[bytes, str]:
        if prepared.draft.certificate_number == number(1) and not taken_over:
            with pytest.raises(BatchLeaseError):  # A's lease still runs
                process(repo, job.id, fake_file, worker="B")
            clock.advance(minutes=3)  # longer than A's 2-minute lease
            assert resumable_jobs(repo) == [job.id]
            taken_over.append(process(repo, job.id, fake_file, worker="B"))
        return fake_file(prepared)

    with pytest.raises(BatchLeaseError, match="lost the lease"):
        process(repo, job.id, stalling, worker="A")
    assert taken_over and taken_over[0].status == "done"
    final = get_batch(repo, job.id)
    assert (final.status, final.succeeded, final.failed, final.pending) == ("done", 4, 0, 0)
    assert statuses(repo, job.id) == ["issued"] * 4  # B issued item 1; A's late result was not recorded again
    assert row_count(repo) == 4
    assert resumable_jobs(repo) == []


def test_resumable_jobs(repo: Repository, documents: Callable[[int], list[Document]], clock: Clock) -> None:
    queued = submit(repo, documents(1))
    clock.advance(seconds=1)
    finished = submit(repo, documents(1))
    process(repo, finished.id)
    assert resumable_jobs(repo) == [queued.id]
    with repo.db.session() as session:  # a worker holds it (as if mid-job)
        row = session.get(BatchJobRow, queued.id)
        assert row is not None
        row.status, row.lease_until = "running", clock.now + timedelta(minutes=2)
    assert resumable_jobs(repo) == []
    clock.advance(minutes=2)
    assert resumable_jobs(repo) == [queued.id]


# --- the runner ----------------------------------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_runner_processes_submitted_and_resumable_jobs(
    repo: Repository, documents: Callable[[int], list[Document]]
) -> None:
    batch = documents(6)
    left_over = submit(repo, batch[:3])  # submitted before the runner started
    runner = BatchRunner(issuing.application(repo), file_maker=fake_file, worker="api-1", poll_interval=None)
    runner.start()
    try:
        fresh = submit(repo, batch[3:])
        runner.submit(fresh.id)
        wait_until(lambda: all(get_batch(repo, j.id).status == "done" for j in (left_over, fresh)))
    finally:
        assert runner.stop(timeout=10)
    assert get_batch(repo, left_over.id).succeeded == 3 and get_batch(repo, fresh.id).succeeded == 3
    assert row_count(repo) == 6


def test_runner_stop_hands_the_job_back(repo: Repository, documents: Callable[[int], list[Document]]) -> None:
    job = submit(repo, documents(4))
    entered, proceed = threading.Event(), threading.Event()

    def blocking(prepared: PreparedVersion) -> tuple[bytes, str]:
        entered.set()
        proceed.wait(timeout=30)
        return fake_file(prepared)

    runner = BatchRunner(issuing.application(repo), file_maker=blocking, worker="api-1", poll_interval=None)
    runner.start()
    assert entered.wait(timeout=30)
    stopper = threading.Thread(target=runner.stop, kwargs={"timeout": 30})
    stopper.start()
    wait_until(lambda: runner.stopping)
    proceed.set()
    stopper.join(timeout=30)
    assert not runner.running
    assert statuses(repo, job.id) == [
        "issued",
        "pending",
        "pending",
        "pending",
    ]  # the item in flight finished
    assert resumable_jobs(repo) == [job.id]
    assert process(repo, job.id, fake_file, worker="api-2").succeeded == 4


# --- real sealed files -----------------------------------------------------------------------------------


def test_batch_with_sealed_files(
    repo: Repository, documents: Callable[[int], list[Document]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    store = KeyStore(tmp_path_factory.mktemp("keys") / "keys")
    init_dev_keys(store)
    maker = catalogue_file_maker(store)
    job = process(repo, submit(repo, documents(2)).id, maker)
    assert (job.status, job.succeeded) == ("done", 2)
    for item in get_batch(repo, job.id, with_items=True).items:
        cert = certificates.get(repo, item.identifier or "")
        assert cert.file_media_type == "application/ofd"
        report = verify_file(repo.blobs.get(cert.file_key or ""), trust=store.trust_store())
        assert report.indication.value == "VALID", report.to_dict()


# --- concurrent single pushes ------------------------------------------------------------------------------


def test_fifty_identical_pushes_at_once_make_one_record(repo: Repository, draft: DraftMaker) -> None:
    """Every pusher passes the "already stored?" check before any of them inserts (the file maker waits for
    all of them), so 49 inserts collide on the unique key and must fall back to the stored row."""
    pushers = 50
    all_checked = threading.Barrier(pushers)
    results: list[certificates.IssueResult] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def make_file(prepared: PreparedVersion) -> tuple[bytes, str]:
        all_checked.wait(timeout=60)
        return fake_file(prepared)

    def push(i: int) -> None:
        try:
            pusher = Actor(f"pusher-{i}", Role.AGENCY, ISSUER)
            result = issuing.issue(repo, draft(SITE_SELECTION), actor=pusher, file_maker=make_file)
        except BaseException as exc:
            with lock:
                errors.append(exc)
            return
        with lock:
            results.append(result)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(pushers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(results) == pushers
    assert len({r.certificate.identifier for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert row_count(repo) == 1


# --- each item is a call of the submitting agency (issue 14) -------------------------------------------------


def test_each_item_records_its_arrival_and_its_one_audit_entry(
    repo: Repository, documents: Callable[[int], list[Document]], clock: Clock
) -> None:
    batch = documents(3)
    completed = clock.now - timedelta(days=2)
    batch[1] = {**batch[1], "completed_at": completed.isoformat(), "channel": "online"}
    batch.append({**documents(4)[3], "completed_at": "yesterday"})
    job = submit(repo, batch)
    [submitted] = [e for e in issuing.audit_entries(repo) if e.action == "batch.submit"]
    assert (submitted.principal, submitted.status_code, submitted.details["batch"]) == (
        AGENCY.ref,
        202,
        job.id,
    )

    clock.advance(minutes=30)
    done = process(repo, job.id)
    assert (done.succeeded, done.failed) == (3, 1)
    items = get_batch(repo, job.id, with_items=True).items
    assert items[3].error is not None and items[3].error["problems"][0][0] == "completed_at"
    entries = [e for e in issuing.audit_entries(repo) if e.action == "certificate.issue"]
    assert [e.request_id for e in entries] == [f"{job.id}:{n}" for n in range(3)]
    for item, entry in zip(items, entries, strict=False):
        cert = certificates.get(repo, item.identifier or "")
        assert (entry.certificate_identifier, entry.holder_digest) == (cert.identifier, cert.holder_ref)
        assert (entry.principal, entry.role, entry.organisation_code) == (AGENCY.ref, "agency", ISSUER)
        assert entry.details["via"] == "batch" and entry.details["source"] == job.id
        arrival = get_arrival(repo, cert.identifier)
        assert arrival is not None and arrival.source == job.id and arrival.arrived_at == cert.created_at
    first, stated = get_arrival(repo, items[0].identifier or ""), get_arrival(repo, items[1].identifier or "")
    assert first is not None and (first.channel, first.completed_at, first.late) == (
        Channel.BULK, job.created_at, False,
    )  # fmt: skip
    assert stated is not None and (stated.channel, stated.completed_at, stated.late) == (
        Channel.ONLINE, completed, True,
    )  # fmt: skip

    again = process(repo, submit(repo, batch[:1]).id)  # a repeat: its own entry, no second arrival
    assert again.succeeded == 1 and statuses(repo, again.id) == ["existing"]
    repeats = [e for e in issuing.audit_entries(repo) if e.details.get("repeat")]
    assert [e.certificate_identifier for e in repeats] == [items[0].identifier]
    with repo.db.session(readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(ArrivalRow)) == 3


def test_an_item_of_another_agencys_type_is_refused_by_the_use_case(
    repo: Repository, draft: DraftMaker
) -> None:
    job = submit(repo, [draft_to_json(draft(CONSTRUCTION_PERMIT))])
    assert process(repo, job.id).failed == 1
    [denied] = [e for e in issuing.audit_entries(repo) if e.action == "certificate.issue"]
    assert (denied.outcome, denied.principal, denied.request_id) == ("deny", AGENCY.ref, f"{job.id}:0")
    assert row_count(repo) == 0


def test_a_disabled_submitter_gets_nothing_more_issued(
    repo: Repository, documents: Callable[[int], list[Document]]
) -> None:
    """Offboarding (issue 17): a batch submitted before its principal was disabled issues nothing afterwards —
    every remaining item is rejected with the reason — and issues again once the principal is enabled."""
    principal = access.create_token(
        repo, role=Role.AGENCY, organisation_code=ISSUER, name="batch-bot"
    ).principal
    job = submit(repo, documents(3), principal=principal)
    app = issuing.application(repo)
    access.set_disabled(app, issuing.call(), organisation_code=ISSUER, name="batch-bot", disabled=True)
    done = process(repo, job.id)
    assert (done.status, done.succeeded, done.failed) == ("done", 0, 3)
    items = get_batch(repo, job.id, with_items=True).items
    assert {item.error["title"] for item in items if item.error} == {"submitter disabled"}
    assert row_count(repo) == 0
    access.set_disabled(app, issuing.call(), organisation_code=ISSUER, name="batch-bot", disabled=False)
    again = process(repo, submit(repo, documents(3), principal=principal).id)
    assert (again.succeeded, again.failed) == (3, 0)
