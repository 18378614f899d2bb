"""The front-end contract: tables and JSON Schemas agree, rows the writer and the exchange write validate,
init-frontend works on SQLite and PostgreSQL, and the `certstore exchange` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from sqlalchemy import inspect, select

from certstore.app import Application
from certstore.exchange.frontend import (
    CATALOGUE_TABLE,
    CERTIFICATE_TABLE,
    FRONTEND_METADATA,
    RECEIPT_TABLE,
    STATUS_TABLE,
    FrontendWriter,
    frontend_engine,
    init_frontend,
)
from certstore.exchange.worker import run_cycle
from tests.cli.conftest import Cli, cli  # noqa: F401 - the fixture
from tests.exchange.support import ISSUER, document, number

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
TABLE_SCHEMAS = {
    "fe_catalogue_entries": "fe_catalogue_entries.schema.json",
    "fe_certificates": "fe_certificates.schema.json",
    "fe_status_changes": "fe_status_changes.schema.json",
    "fe_receipts": "fe_receipts.schema.json",
}


def _validator(name: str) -> Draft202012Validator:
    registry: Registry = Registry()
    for path in [*SCHEMAS.glob("*.schema.json"), *(SCHEMAS / "exchange").glob("*.json")]:
        document_ = json.loads(path.read_text())
        registry = registry.with_resource(path.resolve().as_uri(), Resource.from_contents(document_))
    schema_path = (SCHEMAS / "exchange" / name).resolve()
    schema = {**json.loads(schema_path.read_text()), "$id": schema_path.as_uri()}
    registry = registry.with_resource(schema_path.as_uri(), Resource.from_contents(schema))
    return Draft202012Validator(schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _as_json(row: dict[str, object], table: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in row.items():
        if value is None and key in (
            "file",
            "file_media_type",
            "version",
            "identifier",
            "message",
            "problems",
        ):
            out[key] = None
        elif key in ("data", "document", "problems") and isinstance(value, str):
            out[key] = json.loads(value)
        elif hasattr(value, "isoformat"):
            out[key] = value.isoformat()  # type: ignore[union-attr]
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("table", sorted(TABLE_SCHEMAS))
def test_schema_matches_the_table(table: str) -> None:
    schema = json.loads((SCHEMAS / "exchange" / TABLE_SCHEMAS[table]).read_text())
    Draft202012Validator.check_schema(schema)
    assert set(schema["properties"]) == {c.name for c in FRONTEND_METADATA.tables[table].columns}
    assert set(schema["required"]) <= set(schema["properties"])


def test_rows_written_and_receipts_validate(app: Application, tmp_path: Path) -> None:
    from certstore.catalogue.definitions import shipped_entries
    from certstore.exchange.worker import ExchangeSource

    url = f"sqlite:///{tmp_path / 'fe.db'}"
    entry_doc = next(e for e in shipped_entries() if e.issuer.credit_code == ISSUER).to_document()
    with FrontendWriter(url) as writer:
        writer.catalogue_entry({**entry_doc, "version": entry_doc["version"] + 1})
        writer.certificate(ISSUER, number(1), 1, document(1), channel="bulk")
        writer.certificate(
            ISSUER, number(2), 1, document(2, holder={"name": "x", "id_type": "001", "id_number": "1"})
        )
        writer.status_change(ISSUER, number(1), "suspend", "核查", version=1)
        run_cycle(app, ExchangeSource("contract", url, ISSUER), file_maker=None, worker="w")
        with writer.engine.connect() as conn:
            for table in (CATALOGUE_TABLE, CERTIFICATE_TABLE, STATUS_TABLE, RECEIPT_TABLE):
                validator = _validator(TABLE_SCHEMAS[table.name])
                rows = [dict(r._mapping) for r in conn.execute(select(table))]
                assert rows, table.name
                for row in rows:
                    errors = [
                        f"{list(e.path)}: {e.message}"
                        for e in validator.iter_errors(_as_json(row, table.name))
                    ]
                    assert not errors, (table.name, row, errors)
        receipts = writer.receipts()
    assert [r.status for r in receipts] == ["accepted", "accepted", "rejected", "accepted"]


@pytest.mark.postgres
def test_init_frontend_on_postgres(postgres_database: str) -> None:
    assert len(init_frontend(postgres_database)) == 4
    engine = frontend_engine(postgres_database)
    try:
        assert {"fe_certificates", "fe_receipts"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    with FrontendWriter(postgres_database, create=False) as writer:
        assert writer.certificate(ISSUER, number(1), 1, document(1)) == 1


def test_cli_init_run_status(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    url = f"sqlite:///{tmp_path / 'fe.db'}"
    result = cli("exchange", "init-frontend", url)
    assert result.code == 0 and "fe_certificates" in result.out
    assert "exist already" in cli("exchange", "init-frontend", url).out
    with FrontendWriter(url, create=False) as writer:
        writer.certificate(ISSUER, number(1), 1, document(1))
        writer.certificate(ISSUER, number(2), 1, "{}")
    # a new repository: ``exchange run`` loads the shipped catalogue itself, as the other commands do
    result = cli("exchange", "run", "--once", "--no-seal", "--json", "--source", f"natres={ISSUER}={url}")
    assert result.code == 0, result.err
    [stats] = result.json()  # type: ignore[misc]
    assert (stats["source"], stats["accepted"], stats["rejected"], stats["error"]) == ("natres", 1, 1, None)
    status = cli("exchange", "status", "--json")
    assert status.code == 0
    [entry] = status.json()  # type: ignore[misc]
    assert entry["totals"] == {"accepted": 1, "rejected": 1, "receipts_unsent": 0}
    text = cli("exchange", "status")
    assert "natres: lag 0.0 s" in text.out and "fe_certificates: watermark 2" in text.out
    # the sources file, with the URL from the environment
    sources = tmp_path / "sources.json"
    sources.write_text(json.dumps({"sources": [{"name": "natres", "issuer_code": ISSUER, "url": url}]}))
    assert cli("exchange", "run", "--once", "--no-seal", "--sources", sources).code == 0
    # the contract's form, --source URL: name and issuer come from the sources file
    picked = cli("exchange", "run", "--once", "--no-seal", "--json", "--sources", sources, "--source", url)
    assert picked.code == 0 and picked.json()[0]["source"] == "natres"  # type: ignore[index]
    bad = cli("exchange", "run", "--once", "--source", url)
    assert bad.code == 3 and "NAME=ISSUERCODE=URL" in bad.err
    assert cli("exchange", "run", "--once", "--no-seal").code == 3  # no sources at all
