"""Bulk import of legacy certificates (certstore.services.imports): sealed files that verify, rows committed per
chunk, bad rows reported by line and field, resumable after a crash without duplicates, on SQLite + files and
PostgreSQL, with real worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bench._setup import prepared_data_dir
from certstore.access import Actor
from certstore.forms import TableError, header_cell
from certstore.keystore import KeyStore
from certstore.services import certificates
from certstore.services.imports import IMPORT_ACTION, RUN_ACTION, ImportReport, ImportSettings, import_table
from certstore.store.models import ArrivalRow, CertificateEventRow, CertificateRow
from certstore.store.repository import Repository
from certstore.verify import verify_file
from tests.exchange.support import audit_events
from tests.packaging.ofd.structure import Package
from tests.support.issuing import PUBLIC_URL
from tests.support.legacy_table import (
    CODE,
    FIELDS,
    import_command,
    number,
    row,
    write_csv,
)
from tests.support.ofd import assert_openssl_verifies_seal


@pytest.fixture
def env(database_backend: str, request: pytest.FixtureRequest) -> dict[str, str]:
    if database_backend == "sqlite":
        return {}
    return {"CERTSTORE_DATABASE_URL": str(request.getfixturevalue("postgres_database"))}


@pytest.fixture
def data_dir(tmp_path: Path, env: dict[str, str]) -> Path:
    root = tmp_path / "data"
    prepared_data_dir(root, env)
    return root


@pytest.fixture
def repo(data_dir: Path, env: dict[str, str]) -> Repository:
    return Repository.open(data_dir, env)


def run_import(
    path: Path, data_dir: Path, env: dict[str, str], repo: Repository, **options: Any
) -> ImportReport:
    settings = ImportSettings(data_dir=data_dir, catalogue_code=CODE, env=env, verify_base_url=PUBLIC_URL)
    return import_table(path, settings, repo=repo, **options)


def stored_numbers(repo: Repository) -> list[str]:
    with repo.db.session() as session:
        return list(session.scalars(select(CertificateRow.certificate_number).order_by(CertificateRow.id)))


def test_rows_are_sealed_stored_and_verify(tmp_path: Path, data_dir: Path, env: dict[str, str],
                                          repo: Repository) -> None:  # fmt: skip
    table = write_csv(tmp_path / "legacy.csv", [row(n) for n in range(11)])
    seen: list[int] = []
    report = run_import(table, data_dir, env, repo, workers=2, chunk_rows=4,
                        on_progress=lambda p: seen.append(p.done))  # fmt: skip
    assert (report.imported, report.existing, report.rejected, report.interrupted) == (11, 0, 0, False)
    assert sorted(seen) == seen and seen[-1] == 11 and len(seen) == 3  # one report per chunk of 4, 4, 3
    assert sorted(stored_numbers(repo)) == [number(n) for n in range(11)]
    trust = KeyStore(data_dir / "keys").trust_store()
    with repo.db.session() as session:
        rows = session.scalars(select(CertificateRow)).all()
        events = session.scalars(select(CertificateEventRow)).all()
    operator = Actor.operator().ref
    assert {(e.action, e.actor, e.reason) for e in events} == {("issue", operator, "签发")} and len(
        events
    ) == 11
    # one audit entry per certificate imported (the operator, through the import, from the file), plus the run's
    entries = audit_events(repo)
    imported = [e for e in entries if e.action == IMPORT_ACTION]
    by_identifier = {r.identifier: r for r in rows}
    assert len(imported) == 11 and {e.certificate_identifier for e in imported} == set(by_identifier)
    for event in imported:
        stored = certificates.get(repo, event.certificate_identifier)
        assert (event.principal, event.role, event.outcome.value) == (operator, "operator", "allow")
        assert event.holder_digest == stored.holder_ref
        assert (event.details["via"], event.details["source"]) == ("import", "legacy.csv")
    [run] = [e for e in entries if e.action == RUN_ACTION]
    assert (run.details["imported"], run.details["file"]) == (11, "legacy.csv")
    with repo.db.session() as session:
        assert session.scalar(select(func.count()).select_from(ArrivalRow)) == 0  # legacy data: no deadline
    for stored in rows[:3]:
        assert stored.file_key is not None and stored.file_media_type == "application/ofd"
        report_ = verify_file(repo.blobs.get(stored.file_key), trust=trust)
        assert report_.indication.value == "VALID", report_.to_dict()
        cert = certificates.get(repo, stored.identifier)
        assert cert.holder.name == stored.holder_name and cert.face["project_name"].startswith("历史项目第")


def test_running_again_resumes_without_duplicates(tmp_path: Path, data_dir: Path, env: dict[str, str],
                                                 repo: Repository) -> None:  # fmt: skip
    first = write_csv(tmp_path / "first.csv", [row(n) for n in range(5)])
    assert run_import(first, data_dir, env, repo, workers=0, chunk_rows=2).imported == 5
    keys_before = set(repo.blobs.iter_keys())
    whole = write_csv(tmp_path / "whole.csv", [row(n) for n in range(9)])
    report = run_import(whole, data_dir, env, repo, workers=0, chunk_rows=2)
    assert (report.imported, report.existing, report.rejected) == (4, 5, 0)
    # resumed: the certificates stored before have their entries already, none is added for them
    imported = [e for e in audit_events(repo) if e.action == IMPORT_ACTION]
    assert len(imported) == 9 and len({e.certificate_identifier for e in imported}) == 9
    assert sorted(stored_numbers(repo)) == [number(n) for n in range(9)]
    assert len(set(repo.blobs.iter_keys()) - keys_before) == 4  # the 5 stored ones were not sealed again


def test_bad_rows_are_rejected_by_line_and_field(tmp_path: Path, data_dir: Path, env: dict[str, str],
                                                repo: Repository) -> None:  # fmt: skip
    rows = [
        row(0),
        row(1, certificate_number="ABC"),  # line 3: number format
        row(2, **{"face.contract_price": ""}),  # line 4: a required face field left empty
        row(3, **{"holder.id_number": "91410100MA44A1B2X0"}),  # line 5: check character
        row(4),  # line 6: an extra filled cell
        row(5, **{"holder.id_type": "统一社会信用代码"}),  # the label instead of the code is accepted
        row(6, **{"holder.id_type": "1"}),  # so is "001" after Excel dropped the zeros
    ]
    table = write_csv(tmp_path / "mixed.csv", rows, extra={4: ["stray"]})
    report = run_import(table, data_dir, env, repo, workers=0)
    assert (report.imported, report.rejected) == (3, 4)
    by_line = {r.line: r for r in report.rejections}
    assert sorted(by_line) == [3, 4, 5, 6]
    assert by_line[3].certificate_number == "ABC" and by_line[3].problems[0][0] == "certificate_number"
    assert any("contract_price" in path for path, _ in by_line[4].problems)
    assert by_line[5].problems[0][0] == "holder.id_number"
    assert "多于表头" in by_line[6].problems[0][1]
    assert sorted(stored_numbers(repo)) == [number(0), number(5), number(6)]


def test_a_number_twice_in_the_table(tmp_path: Path, data_dir: Path, env: dict[str, str],
                                     repo: Repository) -> None:  # fmt: skip
    rows = [row(0), row(1), row(0), row(1, **{"holder.name": "另一家公司"})]
    # chunks of one row on two workers: the duplicates race each other across processes
    report = run_import(write_csv(tmp_path / "dup.csv", rows), data_dir, env, repo, workers=2, chunk_rows=1)
    assert (report.imported, report.existing, report.rejected) == (2, 1, 1)
    (conflict,) = report.rejections
    assert conflict.certificate_number == number(1) and "different content" in conflict.problems[0][1]
    assert sorted(stored_numbers(repo)) == [number(0), number(1)]


def test_xlsx_with_spreadsheet_cell_types(tmp_path: Path, data_dir: Path, env: dict[str, str],
                                          repo: Repository) -> None:  # fmt: skip
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append([header_cell(f) for f in FIELDS])
    for n in range(3):
        values: dict[str, object] = dict(row(n))
        values["issue_date"] = date(2020, 3, 9)  # a date cell
        values["holder.id_type"] = 1  # Excel's number for "001"
        values["face.contract_price"] = 18650.42  # a number cell
        values["face.contract_duration"] = 912.0  # whole numbers come back as floats
        sheet.append([values.get(f.name) for f in FIELDS])
    sheet.append([None] * len(FIELDS))  # trailing blank rows are skipped
    book.save(tmp_path / "legacy.xlsx")
    report = run_import(tmp_path / "legacy.xlsx", data_dir, env, repo, workers=0)
    assert (report.imported, report.rejected) == (3, 0), report.rejections
    identifiers = _identifiers(repo)
    assert len(identifiers) == 3
    for identifier in identifiers:
        cert = certificates.get(repo, identifier)
        assert cert.issue_date == date(2020, 3, 9) and cert.face["contract_duration"] == 912


def _identifiers(repo: Repository) -> list[str]:
    with repo.db.session() as session:
        return list(session.scalars(select(CertificateRow.identifier)))


def test_tables_that_do_not_fit_are_refused_before_anything_is_stored(
    tmp_path: Path, data_dir: Path, env: dict[str, str], repo: Repository
) -> None:
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("*证照编号(certificate_number),颜色\n1,红\n", encoding="utf-8")
    with pytest.raises(TableError, match="未知的列“颜色”"):
        run_import(unknown, data_dir, env, repo, workers=0)
    missing = tmp_path / "missing.csv"
    missing.write_text("*证照编号(certificate_number)\n1\n", encoding="utf-8")
    with pytest.raises(TableError, match="缺少必填列：发证日期"):
        run_import(missing, data_dir, env, repo, workers=0)
    with pytest.raises(TableError, match="只支持"):
        run_import(tmp_path / "table.ods", data_dir, env, repo, workers=0)
    assert stored_numbers(repo) == []


@pytest.mark.parametrize("database_backend", ["sqlite"], indirect=True)
def test_gb18030_csv_as_excel_saves_it(tmp_path: Path, data_dir: Path, env: dict[str, str],
                                       repo: Repository) -> None:  # fmt: skip
    table = write_csv(tmp_path / "gbk.csv", [row(0), row(1)], encoding="gb18030")
    assert run_import(table, data_dir, env, repo, workers=0).imported == 2


@pytest.mark.parametrize("database_backend", ["sqlite"], indirect=True)
def test_killed_import_resumes_to_exactly_the_table(tmp_path: Path, data_dir: Path, env: dict[str, str],
                                                    repo: Repository) -> None:  # fmt: skip
    """SIGKILL the whole importing process group mid-way (workers included), then run it again: every row once,
    every stored row's file present and verifying; what the crash left is at most orphan blobs."""
    rows = 24
    table = write_csv(tmp_path / "legacy.csv", [row(n) for n in range(rows)])
    command = import_command(data_dir, table, workers=1, chunk_rows=2)
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env={**os.environ, **env})  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while len(stored_numbers(repo)) < 4:  # a few chunks committed, more in flight
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline, "the import made no progress"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    partial = len(stored_numbers(repo))
    assert 4 <= partial < rows
    report = run_import(table, data_dir, env, repo, workers=0)
    assert report.imported + report.existing == rows and report.existing >= partial
    numbers = stored_numbers(repo)
    assert sorted(numbers) == sorted({number(n) for n in range(rows)}) and len(numbers) == rows
    trust = KeyStore(data_dir / "keys").trust_store()
    with repo.db.session() as session:
        keys = list(session.scalars(select(CertificateRow.file_key)))
        assert session.scalar(select(func.count()).select_from(CertificateEventRow)) == rows
    for key in keys:
        assert key is not None and repo.blobs.exists(key)
    assert verify_file(repo.blobs.get(keys[0]), trust=trust).indication.value == "VALID"
    orphans = set(repo.blobs.iter_keys()) - set(keys)
    assert len(orphans) <= 2  # at most the chunk in flight when killed
    # killed anywhere: every certificate has exactly one entry (a chunk commits its rows and entries together)
    imported = [e for e in audit_events(repo) if e.action == IMPORT_ACTION]
    assert len(imported) == len({e.certificate_identifier for e in imported}) == rows


def test_postgresql_and_s3_from_worker_processes(tmp_path: Path, postgres_database: str, s3_server) -> None:  # type: ignore[no-untyped-def]
    """The production layout: workers open PostgreSQL and the S3 bucket themselves from the settings."""
    env = {
        "CERTSTORE_DATABASE_URL": postgres_database,
        "CERTSTORE_BLOB_URL": f"s3://{s3_server.endpoint}/import-{os.urandom(4).hex()}",
        **s3_server.env(),
    }
    root = tmp_path / "data"
    repo = prepared_data_dir(root, env).repo
    table = write_csv(tmp_path / "legacy.csv", [row(n) for n in range(6)])
    report = run_import(table, root, env, repo, workers=2, chunk_rows=2)
    assert (report.imported, report.rejected) == (6, 0)
    with repo.db.session() as session:
        keys = list(session.scalars(select(CertificateRow.file_key)))
    assert sorted(keys) == sorted(repo.blobs.iter_keys())  # every file in the bucket, nothing else
    trust = KeyStore(root / "keys").trust_store()
    assert verify_file(repo.blobs.get(keys[0]), trust=trust).indication.value == "VALID"  # type: ignore[arg-type]


@pytest.mark.parametrize("database_backend", ["sqlite"], indirect=True)
def test_a_workbook_that_inflates_too_far_is_refused(tmp_path: Path, data_dir: Path, env: dict[str, str],
                                                      repo: Repository) -> None:  # fmt: skip
    import zipfile

    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/sharedStrings.xml", b"<sst>" + b" " * (64 << 20) + b"</sst>")
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(TableError, match="解压后过大"):
        run_import(bomb, data_dir, env, repo, workers=0)


@pytest.mark.parametrize("database_backend", ["sqlite"], indirect=True)
def test_ctrl_c_lets_the_chunks_in_flight_finish(tmp_path: Path, data_dir: Path, env: dict[str, str],
                                                 repo: Repository) -> None:  # fmt: skip
    """SIGINT to the importing process group (what Ctrl-C sends): the workers ignore it, the chunks in flight
    commit, the counts so far are printed, exit 130; the same command then imports the rest."""
    rows = 80  # ~1 s of sealing after the first commit: the signal lands mid-import
    table = write_csv(tmp_path / "legacy.csv", [row(n) for n in range(rows)])
    command = import_command(data_dir, table, workers=2, chunk_rows=2)
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, **env})  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while len(stored_numbers(repo)) < 2:
            assert process.poll() is None and time.monotonic() < deadline, "the import made no progress"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:  # the test failed before the import ended: leave no process behind
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, err.decode()
    assert "run the same command again" in err.decode()
    imported = int(
        next(line for line in out.decode().splitlines() if line.startswith("imported:")).split()[1]
    )
    stored = len(stored_numbers(repo))
    assert (
        2 <= imported == stored < rows
    )  # everything counted was committed, nothing committed went uncounted
    report = run_import(table, data_dir, env, repo, workers=0)
    assert (report.imported, report.existing) == (rows - stored, stored)
    assert sorted(stored_numbers(repo)) == [number(n) for n in range(rows)]


@pytest.mark.parametrize("database_backend", ["sqlite"], indirect=True)
def test_ctrl_c_in_this_process_stops_between_chunks(tmp_path: Path, data_dir: Path, env: dict[str, str],
                                                     repo: Repository) -> None:  # fmt: skip
    """Sealing in this process (workers 0): SIGINT once a chunk is committed and counted — no other chunk
    starts, the report says interrupted and counts exactly what is stored; the handler of before is back."""
    rows = 8
    table = write_csv(tmp_path / "legacy.csv", [row(n) for n in range(rows)])
    before = signal.getsignal(signal.SIGINT)

    def interrupt(progress: Any) -> None:
        if progress.imported == 2:  # the first chunk is in
            os.kill(os.getpid(), signal.SIGINT)

    report = run_import(table, data_dir, env, repo, workers=0, chunk_rows=2, on_progress=interrupt)
    assert report.interrupted and report.imported == len(stored_numbers(repo)) == 2
    assert signal.getsignal(signal.SIGINT) is before
    again = run_import(table, data_dir, env, repo, workers=0, chunk_rows=2)
    assert (again.imported, again.existing, again.interrupted) == (rows - 2, 2, False)


@pytest.mark.openssl
@pytest.mark.parametrize("database_backend", ["sqlite"], indirect=True)
def test_openssl_verifies_an_imported_seal(tmp_path: Path, data_dir: Path, env: dict[str, str],
                                           repo: Repository) -> None:  # fmt: skip
    """The seal the import puts on a row is the development agency's, and OpenSSL accepts its signature."""
    table = write_csv(tmp_path / "one.csv", [row(0)])
    assert run_import(table, data_dir, env, repo, workers=0).imported == 1
    (identifier,) = _identifiers(repo)
    stored = certificates.get(repo, identifier)
    issuer = stored.issuer_code
    agency = KeyStore(data_dir / "keys").signer_entry(issuer).certificate
    files = Package.load(repo.blobs.get(stored.file_key or "")).files
    assert_openssl_verifies_seal(tmp_path, files, agency)
