"""Fixtures of the exchange-task tests (defined in ``tests/exchange/support.py``)."""

from tests.exchange.support import app, clock, frontend_url, repo, source  # noqa: F401
