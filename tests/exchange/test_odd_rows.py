"""Issue 18: every front-end row ends in a receipt. Each odd row an agency can write with plain SQL goes into its
OWN front-end database, followed by a valid certificate and a status change of it; after the cycles every row
has a receipt (rejected rows naming the field) and the valid rows are applied. Also: a fresh repository in the
README order applies rows of a shipped type, rows of a type awaiting approval wait and are applied after the
approval, a renewal row is applied as 延续, and a failure that is not a row's fault makes `run --once` exit 5."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from certstore.access import Principal, Role
from certstore.app import Application
from certstore.catalogue.definitions import shipped_entries
from certstore.cli.exchange import EXIT_CYCLE_FAILED
from certstore.exchange import rowcheck
from certstore.exchange.frontend import (
    CATALOGUE_TABLE,
    CERTIFICATE_TABLE,
    STATUS_TABLE,
    FrontendWriter,
    frontend_engine,
)
from certstore.exchange.worker import ExchangeSource, run_cycle
from certstore.lifecycle import Status
from certstore.packaging.face import LayoutError
from certstore.records import PreparedVersion
from certstore.services import certificates
from certstore.services.catalogue import review_entry
from certstore.store.models import CertificateEventRow, CertificateRow
from certstore.store.repository import Repository
from tests.cli.conftest import Cli, cli  # noqa: F401 - the fixture
from tests.exchange.support import CATALOGUE, ISSUER, document, number

VALID = 500  # the valid certificate written after each odd row
DEEP = 100_000


def _face(**changes: Any) -> dict[str, Any]:
    doc = document(1)
    return {**doc, "face": {**doc["face"], **changes}}


def _holder(name: str) -> dict[str, Any]:
    doc = document(1)
    return {**doc, "holder": {**doc["holder"], "name": name}}


def _raw(conn: Any, **values: Any) -> None:
    """A certificate row written with plain SQL, as an agency's own tool would."""
    row = {
        "issuer_code": ISSUER, "certificate_number": number(1), "version": 1, "channel": "online",
        "completed_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "written_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        **values,
    }  # fmt: skip
    if not isinstance(row["data"], str):
        row["data"] = json.dumps(row["data"], ensure_ascii=False)
    conn.execute(insert(CERTIFICATE_TABLE), row)


_DEEP_ARRAY = "[" * DEEP + "]" * DEEP
_NAN_DOC = json.dumps(_face(land_area=float("nan")), ensure_ascii=False)  # allow_nan: NaN in the text

#: (case id, how the odd row is written, the field its rejection names)
ODD_ROWS: list[tuple[str, Callable[[Any], None], str]] = [
    ("tab-in-face", lambda c: _raw(c, data=_face(land_user="郑州\t示例")), "data.face.land_user"),
    ("vt-in-face", lambda c: _raw(c, data=_face(project_name="示例\x0b项目")), "data.face.project_name"),
    ("u0001-in-holder", lambda c: _raw(c, data=_holder("郑州\x01示例置业有限公司")), "data.holder.name"),
    ("u000c-in-holder", lambda c: _raw(c, data=_holder("郑州\x0c示例置业有限公司")), "data.holder.name"),
    ("rlo-in-face", lambda c: _raw(c, data=_face(location="金水区\u202e示例路")), "data.face.location"),
    ("lri-in-face", lambda c: _raw(c, data=_face(location="金水区\u2066示例路")), "data.face.location"),
    (
        "lone-surrogate",
        lambda c: _raw(c, data=json.dumps(_face(location="X")).replace('"X"', '"\\ud800"')),
        "data.face.location",
    ),
    ("version-1000", lambda c: _raw(c, data=document(1), version=1000), "version"),
    ("version-2147483647", lambda c: _raw(c, data=document(1), version=2_147_483_647), "version"),
    (
        "file-neither-ofd-nor-pdf",
        lambda c: _raw(c, data=document(1), file=b"GIF89a" + b"\0" * 64, file_media_type="application/pdf"),
        "file",
    ),
    (
        "completed-at-year-1",
        lambda c: _raw(c, data=document(1), completed_at="0001-01-01T00:00:00+14:00"),
        "completed_at",
    ),
    (
        "completed-at-year-9999",
        lambda c: _raw(c, data=document(1), completed_at="9999-12-31T23:59:59-14:00"),
        "completed_at",
    ),
    ("json-100k-deep", lambda c: _raw(c, data=_DEEP_ARRAY), "data"),
    (
        "json-100k-deep-in-face",
        lambda c: _raw(c, data=json.dumps(_face(location="X")).replace('"X"', _DEEP_ARRAY)),
        "data",
    ),
    (
        "json-40-deep",
        lambda c: _raw(
            c,
            data=json.dumps(
                _face(
                    location=[
                        [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]
                    ]
                )
            ),
        ),
        "data.face",
    ),
    ("nan-in-face", lambda c: _raw(c, data=_NAN_DOC), "data"),
    ("infinity-in-face", lambda c: _raw(c, data=_NAN_DOC.replace("NaN", "1e400")), "data.face.land_area"),
    ("issue-date-year-1", lambda c: _raw(c, data=document(1, issue_date="0001-01-01")), "data.issue_date"),
    (
        "valid-until-9999",
        lambda c: _raw(c, data=document(1, valid_until="9999-12-31")),
        "data.valid_until",
    ),
    (
        "catalogue-100k-deep",
        lambda c: c.execute(
            insert(CATALOGUE_TABLE), {"document": _DEEP_ARRAY, "written_at": "2026-11-26 00:00:00"}
        ),
        "document",
    ),
    (
        "catalogue-nan",
        lambda c: c.execute(
            insert(CATALOGUE_TABLE), {"document": '{"code": NaN}', "written_at": "2026-11-26 00:00:00"}
        ),
        "document",
    ),
    (
        "status-control-character",
        lambda c: c.execute(
            insert(STATUS_TABLE),
            {
                "issuer_code": ISSUER,
                "certificate_number": number(1),
                "action": "revoke",
                "reason": "\x00",
                "written_at": "2026-11-26 00:00:00",
            },
        ),
        "reason",
    ),
    (
        "status-version-1000",
        lambda c: c.execute(
            insert(STATUS_TABLE),
            {
                "issuer_code": ISSUER,
                "certificate_number": number(1),
                "action": "revoke",
                "reason": "r",
                "version": 1000,
                "written_at": "2026-11-26 00:00:00",
            },
        ),
        "version",
    ),
]


def _all_rows_answered(url: str) -> dict[tuple[str, int], Any]:
    """Every row of the three agency tables has a final receipt; returns the receipts by (table, seq)."""
    engine = frontend_engine(url)
    try:
        with engine.connect() as conn:
            written = {
                (table.name, int(seq))
                for table in (CATALOGUE_TABLE, CERTIFICATE_TABLE, STATUS_TABLE)
                for seq in conn.execute(select(table.c.seq)).scalars()
            }
    finally:
        engine.dispose()
    with FrontendWriter(url, create=False) as writer:
        receipts = {(r.table_name, r.seq): r for r in writer.receipts()}
    assert written <= set(receipts), f"rows without a receipt: {sorted(written - set(receipts))}"
    assert all(receipts[key].status in ("accepted", "rejected") for key in written)
    return receipts


def _valid_rows_after(url: str, i: int = VALID) -> tuple[int, int]:
    with FrontendWriter(url) as writer:
        certificate = writer.certificate(ISSUER, number(i), 1, document(i))
        status = writer.status_change(ISSUER, number(i), "suspend", "年度核查")
    return certificate, status


def _assert_valid_applied(
    repo: Repository, receipts: dict[tuple[str, int], Any], seqs: tuple[int, int]
) -> None:
    assert receipts[("fe_certificates", seqs[0])].accepted, receipts[("fe_certificates", seqs[0])]
    assert receipts[("fe_status_changes", seqs[1])].accepted, receipts[("fe_status_changes", seqs[1])]
    stored = certificates.stored_version(repo, ISSUER, number(VALID), 1)
    assert stored is not None and stored.stored_status is Status.SUSPENDED


def test_each_odd_row_gets_a_rejection_and_the_rest_is_applied(
    app: Application, repo: Repository, tmp_path: Path
) -> None:
    """Each odd row, in a front-end of its own, is followed by a valid certificate and a status change of it.
    After a cycle of every source: every row has a final receipt, the odd row is rejected naming its field,
    the valid rows are applied, and no cycle ended in an error."""
    cases = {}
    for case, write, field in ODD_ROWS:
        url = f"sqlite:///{tmp_path / f'{case}.db'}"
        FrontendWriter(url).close()
        engine = frontend_engine(url)
        with engine.begin() as conn:
            write(conn)
        engine.dispose()
        cases[case] = (url, field, _valid_rows_after(url, VALID + len(cases)))
    for case, (url, field, (certificate, status)) in cases.items():
        stats = run_cycle(app, ExchangeSource(case, url, ISSUER), file_maker=None, worker="odd")
        assert stats.error is None, (case, stats.error)
        receipts = _all_rows_answered(url)
        odd = [r for r in receipts.values() if r.status == "rejected"]
        assert len(odd) == 1, (case, odd)
        paths = [p for p, _ in odd[0].problems]
        assert any(p == field or p.startswith((f"{field}.", f"{field}[")) for p in paths), (case, odd[0])
        assert receipts[("fe_certificates", certificate)].accepted, (case, receipts)
        assert receipts[("fe_status_changes", status)].accepted, (case, receipts)
        i = VALID + list(cases).index(case)
        stored = certificates.stored_version(repo, ISSUER, number(i), 1)
        assert stored is not None and stored.stored_status is Status.SUSPENDED, case


def test_a_status_change_for_a_missing_version_is_reported_under_version(
    app: Application, source: ExchangeSource
) -> None:
    """Version 7 of a certificate that has only version 1: the receipt names ``version``, not the number."""
    with FrontendWriter(source.url) as writer:
        writer.certificate(ISSUER, number(3), 1, document(3))
        missing_version = writer.status_change(ISSUER, number(3), "revoke", "r", version=7)
        missing_certificate = writer.status_change(ISSUER, number(4), "revoke", "r")
    run_cycle(app, source, file_maker=None, worker="w")
    with FrontendWriter(source.url) as writer:
        assert writer.receipt("fe_status_changes", missing_version).problems[0][0] == "version"
        assert writer.receipt("fe_status_changes", missing_certificate).problems[0][0] == "certificate_number"


def test_beijing_time_without_an_offset_is_explained(app: Application, source: ExchangeSource) -> None:
    """A completion time written as Beijing wall time without an offset reads as 8 hours in the future: the
    rejection says times without an offset are UTC."""
    FrontendWriter(source.url).close()
    beijing_wall_time = (app.repo.now() + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")
    engine = frontend_engine(source.url)
    with engine.begin() as conn:
        _raw(conn, data=document(1), completed_at=beijing_wall_time)
    engine.dispose()
    run_cycle(app, source, file_maker=None, worker="w")
    with FrontendWriter(source.url) as writer:
        (receipt,) = writer.receipts("fe_certificates")
    assert receipt.problems[0][0] == "completed_at" and "without an offset are UTC" in receipt.problems[0][1]


def _render_or_fail(prepared: PreparedVersion) -> tuple[bytes, str]:
    """A file maker standing in for the renderer: it fails the way a renderer or a font does."""
    face = json.dumps(prepared.face, ensure_ascii=False)
    if "𡈽" in face:
        raise LayoutError("no font has U+2123D 𡈽", field="location")
    if "渲染故障" in face:
        raise RuntimeError("the renderer crashed")
    return f"file of {prepared.identifier}\n".encode() * 20, "application/octet-stream"


@pytest.mark.parametrize(("value", "field"), [("郑州𡈽路", "data.face.location"), ("渲染故障", "data")])
def test_a_row_that_cannot_be_rendered_is_rejected_and_sealing_goes_on(
    app: Application, repo: Repository, tmp_path: Path, value: str, field: str
) -> None:
    """Rendering or sealing ONE row fails (a layout error naming the field, any other exception): that row is
    rejected with a field-level reason and the rows after it are sealed and applied."""
    url = f"sqlite:///{tmp_path / 'render.db'}"
    FrontendWriter(url).close()
    engine = frontend_engine(url)
    with engine.begin() as conn:
        _raw(conn, data=_face(location=value))
    engine.dispose()
    seqs = _valid_rows_after(url)
    stats = run_cycle(app, ExchangeSource("render", url, ISSUER), file_maker=_render_or_fail, worker="w")
    assert stats.error is None, stats.error
    receipts = _all_rows_answered(url)
    (odd,) = [r for r in receipts.values() if r.status == "rejected"]
    assert odd.problems[0][0] == field
    _assert_valid_applied(repo, receipts, seqs)


def test_a_repository_failure_ends_the_cycle_and_run_once_exits_5(
    cli: Cli,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not the row's fault (the repository failing under the cycle): no row is rejected for it, the cycle
    records the error, the metrics count an error cycle and `exchange run --once` exits 5."""
    from sqlalchemy.exc import OperationalError

    from certstore.exchange import cycle as cycle_module
    from certstore.services.exchange_metrics import CYCLES

    url = f"sqlite:///{tmp_path / 'down.db'}"
    with FrontendWriter(url) as writer:
        seq = writer.certificate(ISSUER, number(9), 1, document(9))

    def down(*_: Any, **__: Any) -> None:
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(cycle_module.Cycle, "_record", down)
    before = CYCLES.labels("down", "error")._value.get()
    result = cli("exchange", "run", "--once", "--no-seal", "--source", f"down={ISSUER}={url}")
    assert result.code == EXIT_CYCLE_FAILED, (result.out, result.err)
    assert "server closed the connection" in result.out
    assert CYCLES.labels("down", "error")._value.get() == before + 1
    with FrontendWriter(url) as writer:
        assert writer.receipt("fe_certificates", seq) is None  # not rejected: applied by a later cycle
    monkeypatch.undo()
    assert cli("exchange", "run", "--once", "--no-seal", "--source", f"down={ISSUER}={url}").code == 0
    with FrontendWriter(url) as writer:
        assert writer.receipt("fe_certificates", seq).accepted


def test_fresh_repository_in_readme_order_applies_rows_of_a_shipped_type(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    """keys init → exchange init-frontend → exchange run --once on a new data directory: the shipped catalogue
    is loaded, the certificate of a shipped type is sealed and accepted."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert cli("keys", "init").code == 0
    assert cli("exchange", "init-frontend", url).code == 0
    with FrontendWriter(url, create=False) as writer:
        seq = writer.certificate(ISSUER, number(1), 1, document(1))
    result = cli("exchange", "run", "--once", "--source", f"fresh={ISSUER}={url}")
    assert result.code == 0, (result.out, result.err)
    with FrontendWriter(url, create=False) as writer:
        receipt = writer.receipt("fe_certificates", seq)
    assert receipt is not None and receipt.accepted, receipt


def test_rows_of_a_type_awaiting_approval_wait_then_apply(
    app: Application, repo: Repository, source: ExchangeSource
) -> None:
    """A catalogue entry and certificates of that type in one delivery: the entry is submitted, the
    certificates (and a status change of one) wait with a 'waiting' receipt and a gap; after the bureau's
    approval the next cycle applies them."""
    own = next(e for e in shipped_entries() if e.code == CATALOGUE).to_document()
    code = f"{ISSUER}099"
    entry_document = {**own, "code": code, "version": 1, "name": "示例新证照"}
    with FrontendWriter(source.url) as writer:
        writer.catalogue_entry(entry_document)
        first = writer.certificate(ISSUER, number(60), 1, {**document(60), "catalogue": code})
        second = writer.certificate(ISSUER, number(60), 2, {**document(60, 2), "catalogue": code})
        status = writer.status_change(ISSUER, number(60), "suspend", "核查")
    stats = run_cycle(app, source, file_maker=None, worker="w")
    assert stats.error is None and stats.deferred >= 2
    with FrontendWriter(source.url) as writer:
        assert writer.receipt("fe_certificates", first).status == "waiting"
        assert "awaiting the bureau's approval" in (writer.receipt("fe_certificates", first).message or "")
        assert writer.receipt("fe_status_changes", status) is None  # waits for the certificate
    run_cycle(app, source, file_maker=None, worker="w")  # still pending: still waiting, nothing rejected
    with FrontendWriter(source.url) as writer:
        assert {r.status for r in writer.receipts()} <= {"accepted", "waiting"}
    bureau = Principal(id=1, name="bureau", role=Role.BUREAU, organisation_code="x", organisation_name="局")
    review_entry(repo, code, 1, approve=True, reviewer=bureau)
    stats = run_cycle(app, source, file_maker=None, worker="w")
    assert stats.error is None and stats.open_gaps == 0
    with FrontendWriter(source.url) as writer:
        assert writer.receipt("fe_certificates", first).accepted
        assert writer.receipt("fe_certificates", second).accepted
        assert writer.receipt("fe_status_changes", status).accepted
    latest = certificates.stored_version(repo, ISSUER, number(60))
    assert latest is not None and latest.version == 2 and latest.stored_status is Status.SUSPENDED


def test_a_renewal_row_is_applied_as_a_renewal(
    app: Application, repo: Repository, source: ExchangeSource
) -> None:
    """operation = 'renew': version 2 is a 延续 of version 1 (event renew, not change); the same renewal delivered
    again is a repeat (accepted, the same version), another renewal of version 1 is refused (version 2 replaced
    it); a renewal that changes the face is rejected (it is a change)."""
    with FrontendWriter(source.url) as writer:
        writer.certificate(ISSUER, number(80), 1, document(80))
        renewal = writer.certificate(ISSUER, number(80), 2, document(80), operation="renew")
        again = writer.certificate(ISSUER, number(80), 2, document(80), operation="renew")  # delivered twice
        longer = writer.certificate(
            ISSUER, number(80), 2, document(80, valid_until="2040-01-01"), operation="renew"
        )  # another renewal of version 1, which version 2 has replaced already
        writer.certificate(ISSUER, number(81), 1, document(81))
        not_a_renewal = writer.certificate(
            ISSUER,
            number(81),
            2,
            _face(location="别处") | {"certificate_number": number(81)},
            operation="renew",
        )
        bad_operation = writer.certificate(ISSUER, number(82), 1, document(82), operation="extend")
    stats = run_cycle(app, source, file_maker=None, worker="w")
    assert stats.error is None, stats.error
    with FrontendWriter(source.url) as writer:
        first = writer.receipt("fe_certificates", renewal)
        assert first is not None and first.accepted
        repeat = writer.receipt("fe_certificates", again)
        assert repeat is not None and repeat.accepted and repeat.identifier == first.identifier
        assert writer.receipt("fe_certificates", longer).problems[0][0] == "version"
        assert writer.receipt("fe_certificates", not_a_renewal).problems[0][0] == "data.face"
        assert writer.receipt("fe_certificates", bad_operation).problems[0][0] == "operation"
    with repo.db.session() as session:
        actions = (
            session.execute(
                select(CertificateEventRow.action)
                .join(CertificateRow, CertificateRow.id == CertificateEventRow.certificate_id)
                .where(CertificateRow.certificate_number == number(80), CertificateRow.version == 2)
            )
            .scalars()
            .all()
        )
    assert actions == ["renew"]


def test_an_old_front_end_without_the_operation_column_is_read(
    app: Application, source: ExchangeSource
) -> None:
    """A front-end created before `operation` existed is read (the column as NULL); init-frontend adds it."""
    FrontendWriter(source.url).close()
    engine = frontend_engine(source.url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE fe_certificates DROP COLUMN operation"))
        _raw(conn, data=document(1))
    engine.dispose()
    assert run_cycle(app, source, file_maker=None, worker="w").accepted == 1
    FrontendWriter(source.url).close()  # init_frontend: adds the column
    engine = frontend_engine(source.url)
    with engine.connect() as conn:
        assert "operation" in [r[1] for r in conn.execute(text("PRAGMA table_info(fe_certificates)"))]
    engine.dispose()


def test_named_limits() -> None:
    """The limits are module constants with the documented values."""
    assert (rowcheck.MAX_VERSION, rowcheck.MAX_JSON_DEPTH, str(rowcheck.EARLIEST_DATE)) == (
        999,
        32,
        "1949-10-01",
    )


@pytest.mark.postgres
def test_a_time_postgresql_cannot_hand_over_is_rejected_naming_the_column(
    app: Application, repo: Repository, postgres_server: object
) -> None:
    """On a PostgreSQL front-end `0001-01-01T00:00:00+14:00` is stored as a BC time the driver cannot convert:
    the batch is read row by row, that row is rejected under `completed_at`, the rows after it are applied."""
    name = postgres_server.create_database()  # type: ignore[attr-defined]
    url = postgres_server.url(name)  # type: ignore[attr-defined]
    try:
        FrontendWriter(url).close()
        engine = frontend_engine(url)
        with engine.begin() as conn:
            _raw(conn, data=document(1), completed_at="0001-01-01T00:00:00+14:00")
        engine.dispose()
        seqs = _valid_rows_after(url)
        stats = run_cycle(app, ExchangeSource("pg-odd", url, ISSUER), file_maker=None, worker="w")
        assert stats.error is None, stats.error
        receipts = _all_rows_answered(url)
        (odd,) = [r for r in receipts.values() if r.status == "rejected"]
        assert odd.problems[0][0] == "completed_at", odd
        _assert_valid_applied(repo, receipts, seqs)
    finally:
        postgres_server.drop_database(name)  # type: ignore[attr-defined]
