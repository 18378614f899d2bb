"""``insert_many``: the same stored bytes as SQLAlchemy's executemany, for every column type the batch writers
use, with and without ``ON CONFLICT``; the general way where SQLAlchemy adds values of its own."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from certstore.store.bulk import insert_many
from certstore.store.models import JSONDocument, UTCDateTime

metadata = MetaData()
THINGS = Table(
    "things",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("at", UTCDateTime, nullable=True),
    Column("day", Date, nullable=True),
    Column("document", JSONDocument, nullable=True),
    Column("flag", Boolean, nullable=False),
    Column("blob", LargeBinary, nullable=True),
    Column("note", Text, nullable=True),
)
DEFAULTED = Table(
    "defaulted",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False),
    Column("kind", String(16), nullable=False, default="plain"),
)

ROWS: list[dict[str, Any]] = [
    {
        "name": "一",
        "at": datetime(2026, 12, 7, 8, 0, 1, 123456, tzinfo=timezone(timedelta(hours=8))),
        "day": date(2026, 12, 7),
        "document": {"面": ["𡈽", 1, 2.5, None, True], "nested": {"a": "b"}},
        "flag": True,
        "blob": b"\x00\x01\xff",
        "note": "tab\there",
    },
    {"name": "two", "at": None, "day": None, "document": None, "flag": False, "blob": None, "note": None},
    {
        "name": "three",
        "at": datetime(1, 1, 1, tzinfo=UTC),
        "day": date(9999, 12, 31),
        "document": [],
        "flag": False,
        "blob": b"",
        "note": "",
    },
]


def _engine(path: Path) -> Any:
    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    return engine


def _raw(path: Path, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT *, typeof(document) FROM {table} ORDER BY id").fetchall()


def _statements(engine: Any) -> list[str]:
    seen: list[str] = []
    event.listen(
        engine, "before_cursor_execute", lambda conn, cursor, statement, *rest: seen.append(statement)
    )
    return seen


def test_the_same_bytes_as_sqlalchemys_executemany(tmp_path: Path) -> None:
    general, fast = _engine(tmp_path / "general.db"), _engine(tmp_path / "fast.db")
    # runs of one object (a batch's time, one document) are converted once, and alike
    rows = [*ROWS, *({**row, "name": f"{row['name']}+", "at": ROWS[0]["at"], "document": ROWS[0]["document"]}
                     for row in ROWS)]  # fmt: skip
    with Session(general) as session, session.begin():
        session.execute(insert(THINGS), rows)
    statements = _statements(fast)
    with Session(fast) as session, session.begin():
        insert_many(session, insert(THINGS), rows)
    assert _raw(tmp_path / "fast.db", "things") == _raw(tmp_path / "general.db", "things")
    assert len([s for s in statements if s.startswith("INSERT")]) == 1


@pytest.mark.parametrize("clause", ["nothing", "update"])
def test_on_conflict_clauses_behave_the_same(tmp_path: Path, clause: str) -> None:
    def statement() -> Any:
        base = sqlite.insert(THINGS)
        if clause == "nothing":
            return base.on_conflict_do_nothing(index_elements=["name"])
        return base.on_conflict_do_update(
            index_elements=["name"], set_={c: base.excluded[c] for c in ("at", "document", "note")}
        )

    again = [{**row, "note": f"again {row['name']}", "document": {"again": True}} for row in ROWS]
    results = []
    for name, write in (
        ("general", lambda s, rows: s.execute(statement(), rows)),
        ("fast", lambda s, rows: insert_many(s, statement(), rows)),
    ):
        engine = _engine(tmp_path / f"{name}.db")
        with Session(engine) as session, session.begin():
            write(session, ROWS)
            write(session, again)
        results.append(_raw(tmp_path / f"{name}.db", "things"))
    assert results[0] == results[1]
    assert [row[7] for row in results[0]] == (
        [row["note"] for row in ROWS] if clause == "nothing" else [row["note"] for row in again]
    )


def test_row_keys_renamed_to_their_columns(tmp_path: Path) -> None:
    """``renamed`` maps a row key to its column (an ORM attribute named unlike its column), the fast way and
    the general way (rows a Python-side default completes) alike."""
    general, fast = _engine(tmp_path / "general.db"), _engine(tmp_path / "fast.db")
    with Session(general) as session, session.begin():
        session.execute(insert(THINGS), ROWS)
        session.execute(insert(DEFAULTED), [{"name": "a"}])
    rows = [{("doc" if key == "document" else key): value for key, value in row.items()} for row in ROWS]
    with Session(fast) as session, session.begin():
        insert_many(session, insert(THINGS), rows, renamed={"doc": "document"})
        insert_many(session, insert(DEFAULTED), [{"label": "a"}], renamed={"label": "name"})
    assert _raw(tmp_path / "fast.db", "things") == _raw(tmp_path / "general.db", "things")
    for path in (tmp_path / "fast.db", tmp_path / "general.db"):
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT name, kind FROM defaulted").fetchall() == [("a", "plain")]


def test_a_connection_as_well_as_a_session(tmp_path: Path) -> None:
    engine = _engine(tmp_path / "fast.db")
    with engine.begin() as conn:
        insert_many(conn, insert(THINGS), ROWS[:1])
    assert _raw(tmp_path / "fast.db", "things")[0][1] == "一"


def test_python_side_defaults_go_the_general_way(tmp_path: Path) -> None:
    engine = _engine(tmp_path / "fast.db")
    with Session(engine) as session, session.begin():
        insert_many(session, insert(DEFAULTED), [{"name": "a"}, {"name": "b"}])  # kind from its default
        insert_many(session, insert(DEFAULTED), [{"name": "c", "kind": "set"}])
    with sqlite3.connect(tmp_path / "fast.db") as conn:
        stored = conn.execute("SELECT name, kind FROM defaulted ORDER BY id").fetchall()
    assert stored == [("a", "plain"), ("b", "plain"), ("c", "set")]


def test_rows_with_other_keys_are_refused_as_sqlalchemy_refuses_them(tmp_path: Path) -> None:
    engine = _engine(tmp_path / "fast.db")
    uneven = [{"name": "c", "kind": "set"}, {"name": "d"}]
    for rows in (uneven, [{"name": "c", "kind": "set"}, {"name": "d", "other": 1}]):
        refused = pytest.raises(StatementError, match="A value is required for bind parameter 'kind'")
        with refused, Session(engine) as session, session.begin():
            insert_many(session, insert(DEFAULTED), rows)
    with sqlite3.connect(tmp_path / "fast.db") as conn:
        assert conn.execute("SELECT count(*) FROM defaulted").fetchone() == (0,)


def test_a_value_its_type_refuses_is_the_error_sqlalchemy_raises(tmp_path: Path) -> None:
    naive = [{**ROWS[0], "at": datetime(2026, 1, 1)}]
    errors = []
    for name, write in (
        ("general", lambda s: s.execute(insert(THINGS), naive)),
        ("fast", lambda s: insert_many(s, insert(THINGS), naive)),
    ):
        engine = _engine(tmp_path / f"{name}.db")
        with pytest.raises(StatementError) as raised, Session(engine) as session, session.begin():
            write(session)
        errors.append((type(raised.value.orig), str(raised.value).split("\n")[0]))
        assert _raw(tmp_path / f"{name}.db", "things") == []
    assert (
        errors[0] == errors[1] == (ValueError, "(builtins.ValueError) naive datetime given to a UTC column")
    )


def test_no_rows_is_nothing(tmp_path: Path) -> None:
    engine = _engine(tmp_path / "fast.db")
    statements = _statements(engine)
    with Session(engine) as session, session.begin():
        insert_many(session, insert(THINGS), [])
    assert not [s for s in statements if s.startswith("INSERT")]
