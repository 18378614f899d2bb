"""A repository on each database backend (SQLite, PostgreSQL) with a file blob store and the shipped catalogue."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from certstore.catalogue.definitions import example_face, shipped_entries
from certstore.identifiers import HolderIdType
from certstore.records import CertificateDraft, Holder
from certstore.store.db import Database
from certstore.store.repository import Repository
from tests.support.clock import Clock
from tests.support.repository import make_repo


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def repo(database: Database, tmp_path: Path, clock: Clock) -> Repository:
    return make_repo(database, tmp_path, clock)


RESIDENT_IDS = ["11010519491231002X", "410105198001010017", "410102199003076541"]
CREDIT_CODES = ["91410100MA44A1B2XW", "91410105MA9K0XQ7XN"]

DraftMaker = Callable[..., CertificateDraft]


@pytest.fixture
def draft() -> DraftMaker:
    """``draft(code=None, number=None, **changes)``: a valid draft of a shipped catalogue type."""
    entries = {e.code: e for e in shipped_entries()}

    def make(code: str | None = None, number: str | None = None, *, holder: Holder | None = None,
             face: dict | None = None, **changes: object) -> CertificateDraft:  # fmt: skip
        entry = entries[code] if code else next(iter(entries.values()))
        sample = example_face(entry)
        default_holder = (
            Holder("张三", HolderIdType.RESIDENT_ID, RESIDENT_IDS[0])
            if str(entry.holder_type) == "natural_person"
            else Holder("郑州示例置业有限公司", HolderIdType.CREDIT_CODE, CREDIT_CODES[0])
        )
        fields = {
            "catalogue_code": entry.code,
            "certificate_number": number or sample.get("_number") or entry.number_example,
            "holder": holder or default_holder,
            "face": face if face is not None else sample,
            "issue_date": datetime(2026, 11, 26).date(),
        }
        fields.update(changes)
        return CertificateDraft(**fields)  # type: ignore[arg-type]

    return make
