"""A cycle leaves the heap that exists before it out of the collector's passes, and hands it back after — unless
the process keeps a frozen heap of its own."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from certstore.app import Application
from certstore.exchange.cycle import run_cycle
from certstore.exchange.frontend import FrontendWriter
from certstore.exchange.worker import ExchangeSource
from certstore.records import PreparedVersion
from tests.exchange.support import ISSUER, document, number


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_the_old_heap_is_frozen_during_the_cycle_only(
    app: Application, source: ExchangeSource, unfrozen: None
) -> None:
    during: list[int] = []

    def maker(prepared: PreparedVersion) -> tuple[bytes, str]:
        during.append(gc.get_freeze_count())
        return f"file of {prepared.identifier}".encode(), "application/octet-stream"

    with FrontendWriter(source.url) as writer:
        writer.certificate(ISSUER, number(1), 1, document(1))
    assert run_cycle(app, source, file_maker=maker, worker="w").accepted == 1
    assert during and during[0] > 1000  # the modules, the application: frozen while the cycle ran
    assert gc.get_freeze_count() == 0


def test_a_heap_frozen_before_the_cycle_stays_frozen(
    app: Application, source: ExchangeSource, unfrozen: None
) -> None:
    gc.freeze()
    frozen = gc.get_freeze_count()
    with FrontendWriter(source.url) as writer:
        writer.certificate(ISSUER, number(1), 1, document(1))
    assert run_cycle(app, source, file_maker=None, worker="w").accepted == 1
    assert gc.get_freeze_count() >= frozen
