"""A new version delivered through the exchange keeps the serial its certificate was first stored with — also the
unkeyed serial of a certificate issued before the serial key (issue 15, item 6); a first version gets the keyed
serial."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import update

from certstore.app import Application
from certstore.exchange.plan import CertificatePlan, Planner
from certstore.exchange.source import ExchangeSource
from certstore.identifiers import CertificateIdentifier, legacy_serial_for, serial_for
from certstore.records import draft_from_json
from certstore.services import certificates
from certstore.services.certificates import NO_FILE
from certstore.store.models import CertificateRow
from certstore.store.repository import Repository
from tests.exchange.support import ISSUER, document, number
from tests.exchange.test_certificate_batch import exchange_call


def _row(i: int, version: int, now: datetime) -> SimpleNamespace:
    return SimpleNamespace(
        seq=i * 10 + version, issuer_code=ISSUER, certificate_number=number(i), version=version,
        channel="offline", completed_at=now - timedelta(hours=1), file=None, file_media_type=None,
        data=json.dumps(document(i, version), ensure_ascii=False),
    )  # fmt: skip


def test_delivered_versions_keep_the_stored_serial(
    app: Application, repo: Repository, source: ExchangeSource
) -> None:
    v1 = certificates.issue(
        app, exchange_call(), draft_from_json(document(1, 1)), file_maker=NO_FILE
    ).certificate
    parsed = CertificateIdentifier.parse(v1.identifier)
    legacy = CertificateIdentifier.build(parsed.type_code, ISSUER, legacy_serial_for(ISSUER, number(1)), 1)
    with repo.db.session() as session:  # as if issued before the serial key
        session.execute(
            update(CertificateRow)
            .where(CertificateRow.identifier == v1.identifier)
            .values(identifier=str(legacy), serial=legacy.serial)
        )
    planner = Planner(repo, source, trust=None)
    now = repo.now()
    changed = planner.certificate("fe_certificates", _row(1, 2, now), now)
    assert isinstance(changed, CertificatePlan), changed
    assert changed.prepared.identifier == legacy.with_version(2)
    first = planner.certificate("fe_certificates", _row(2, 1, now), now)
    assert isinstance(first, CertificatePlan), first
    assert first.prepared.identifier.serial == serial_for(ISSUER, number(2), key=repo.serial_key)
