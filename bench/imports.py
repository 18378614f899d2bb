"""``python -m bench import``: bulk import of legacy certificates (``certstore import``), 100k-row targets.

A synthetic table of 建筑工程施工许可证 (the densest shipped face) is written as the agency template
(:mod:`certstore.forms`); every row has its own certificate number, holder name and project text drawn from the
common hanzi, so every certificate needs its own font subset and QR code as real data would. It is imported with
:func:`certstore.services.imports.import_table` as the operator through the import entry point — parallel
sealing workers, one commit per chunk with each row's audit entry — into:

- **SQLite + files** (the embedded default): ``import_100k_s``;
- **PostgreSQL + S3** (throwaway PostgreSQL 15 cluster and SeaweedFS server, as in the tests): ``import_100k_pg_s``.

Rows imported: ``CERTSTORE_BENCH_IMPORT_ROWS`` (default 20,000; quick 600). The 100k figures are the measured
rate scaled to 100,000 rows (the work per row is constant: one chunk commit per 200 rows, no per-table state)
unless the run itself was 100,000 rows. A resume pass (the same table again) is timed too: every row is then
``existing`` and nothing is sealed.

Reference measured in the same run: one process sealing files in a loop (layout + OFD + seal, no storage) on one
core, times the workers — ``import_vs_sealing_ratio`` is how much of that ideal the whole import reaches.
"""

from __future__ import annotations

import csv
import os
import random
import tempfile
import time
from contextlib import ExitStack
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

from bench import BenchContext, Results, register
from bench._setup import bench_call, prepared_data_dir
from certstore.app import Application
from certstore.catalogue import CatalogueEntry
from certstore.forms import form_fields, header_cell
from certstore.packaging.layout import FaceData
from certstore.records import draft_to_json, example_draft, prepare_version
from certstore.services.calls import Via
from certstore.services.catalogue import get_entry
from certstore.services.imports import ImportSettings, default_workers, import_table
from certstore.services.issuance import make_ofd

__all__ = ["write_table"]

CATALOGUE = "11410100990000025A001"  # 建筑工程施工许可证
_HANZI = (
    "华中原郑州洛阳开封新乡焦作安阳鹤壁濮阳许昌漯河三门峡南阳商丘信阳周口驻马店济源金水二七管城惠济上街中牟巩义荥阳新密"
    "新郑登封航空港东区北区龙湖高新经开建设发展置业投资集团实业科技城市更新住宅小区商业综合楼项目一二三四五六七八九十期"
    "工程教育医院学校公园广场道路桥梁隧道地铁站配套设施改造提升安置房保障性住房产业园物流仓储厂房研发中心酒店写字楼文化"
)


def write_table(path: Path, entry: CatalogueEntry, rows: int, *, seed: int = 7, start: int = 0) -> None:
    """A filled-in import template for ``entry`` with ``rows`` distinct certificates (numbers ``start`` on)."""
    rng = random.Random(seed)
    fields = form_fields(entry)
    base = draft_to_json(example_draft(entry, issue_date=date(2019, 5, 20)))
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([header_cell(f) for f in fields])
        for n in range(start, start + rows):
            words = "".join(rng.choice(_HANZI) for _ in range(10))
            issued = date(2019, 1, 2) + timedelta(days=n // 10_000)  # 证照编号: 4101xx + date + seq + sub
            values = {
                "certificate_number": f"410105{issued:%Y%m%d}{n // 100 % 100:02d}{n % 100:02d}",
                "issue_date": issued.isoformat(),
                "holder.name": f"郑州{words[:4]}置业有限公司",
                "holder.id_type": base["holder"]["id_type"],
                "holder.id_number": base["holder"]["id_number"],
                **{f"face.{k}": str(v) for k, v in base["face"].items()},
                "face.builder": f"郑州{words[:4]}置业有限公司",
                "face.project_name": f"{words}项目（{n % 9 + 1}期）",
                "face.contract_price": f"{1000 + n % 90000}.{n % 100:02d}",
            }
            writer.writerow([values.get(f.name, "") for f in fields])


def _sealing_rate(ctx: BenchContext, app: Application) -> float:
    """Files sealed per second by one process in a loop (layout + OFD + seal; nothing stored)."""
    entry = get_entry(app.repo, CATALOGUE)
    key = app.sealing_key(entry)
    base_url = app.sealing_base_url()
    base = example_draft(entry, issue_date=date(2019, 5, 20))
    counter = iter(range(10**9))
    rng = random.Random(3)

    def seal_one() -> None:
        n = next(counter)
        face = {**base.face, "project_name": "".join(rng.choice(_HANZI) for _ in range(12))}
        issued = date(2019, 1, 2) + timedelta(days=n // 10_000)
        number = f"410105{issued:%Y%m%d}{n // 100 % 100:02d}{n % 100:02d}"
        draft = replace(base, certificate_number=number, issue_date=issued, face=face)
        prepared = prepare_version(
            entry, draft, version=1, holder_key=app.repo.holder_key, serial_key=app.repo.serial_key
        )
        make_ofd(FaceData.from_prepared(prepared), key, verify_base_url=base_url)

    return ctx.rate(seal_one, seconds=ctx.pick(full=6.0, quick=1.0)).per_s


def _run(
    ctx: BenchContext, root: Path, env: dict[str, str], rows: int, label: str
) -> tuple[float, float, float]:
    """(seconds for ``rows``, seconds of the resume pass, single-process sealing rate)."""
    app = prepared_data_dir(root, env)
    repo = app.repo
    table = root / "legacy.csv"
    write_table(table, get_entry(repo, CATALOGUE), rows)
    settings = ImportSettings(
        data_dir=root, catalogue_code=CATALOGUE, env=env, verify_base_url=app.sealing_base_url()
    )
    workers = default_workers()
    start = time.perf_counter()
    report = import_table(
        table, settings, workers=workers, repo=repo, call=bench_call("import", Via.IMPORT), audit=app.audit
    )
    seconds = time.perf_counter() - start
    if report.imported != rows or report.rejected:
        raise RuntimeError(f"{label}: imported {report.imported} of {rows}, rejected {report.rejections[:3]}")
    start = time.perf_counter()
    again = import_table(
        table, settings, workers=workers, repo=repo, call=bench_call("import", Via.IMPORT), audit=app.audit
    )
    resume = time.perf_counter() - start
    if again.existing != rows:
        raise RuntimeError(f"{label}: resume pass saw {again.existing} existing of {rows}")
    sealing = _sealing_rate(ctx, app)
    app.close()
    ctx.log(
        f"{label}: {rows} rows in {seconds:.1f} s ({rows / seconds:.0f}/s, {workers} workers); "
        f"resume pass {resume:.1f} s; one process seals {sealing:.0f}/s"
    )
    return seconds, resume, sealing


@register("import", "bulk import of legacy certificates: 100k rows, SQLite + files and PostgreSQL + S3")
def import_(ctx: BenchContext) -> Results:
    rows = int(os.environ.get("CERTSTORE_BENCH_IMPORT_ROWS") or ctx.pick(full=20_000, quick=600))
    scale = 100_000 / rows
    workers = default_workers()
    results: Results = {"import_rows": rows, "import_workers": workers}
    with tempfile.TemporaryDirectory(prefix="certstore-bench-import-") as tmp:
        root = Path(tmp) / "sqlite"
        seconds, resume, sealing = _run(ctx, root, {}, rows, "SQLite + files")
        results["import_100k_s"] = seconds * scale
        results["import_resume_100k_s"] = resume * scale
        results["sealing_per_s_one_process"] = sealing
        results["import_vs_sealing_ratio"] = (rows / seconds) / (sealing * workers)
    # Throwaway servers, started as the tests start them (devservers).
    from devservers.postgres import PostgresServer
    from devservers.seaweedfs import SeaweedFS

    with tempfile.TemporaryDirectory(prefix="certstore-bench-import-pg-") as tmp, ExitStack() as stack:
        postgres = stack.enter_context(PostgresServer())
        s3 = stack.enter_context(SeaweedFS(Path(tmp) / "s3"))
        env = {
            "CERTSTORE_DATABASE_URL": postgres.url(postgres.create_database()),
            "CERTSTORE_BLOB_URL": f"s3://{s3.endpoint}/bench-import",
            **s3.env(),
        }
        seconds, resume, _ = _run(ctx, Path(tmp) / "data", env, rows, "PostgreSQL + S3")
        results["import_100k_pg_s"] = seconds * scale
        results["import_resume_100k_pg_s"] = resume * scale
    ctx.log(
        f"100k rows: {results['import_100k_s']:.0f} s SQLite + files (target 120 s), "
        f"{results['import_100k_pg_s']:.0f} s PostgreSQL + S3 (target 300 s)"
        + ("" if rows == 100_000 else f" — scaled from {rows} rows")
    )
    return results
