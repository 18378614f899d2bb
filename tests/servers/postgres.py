"""The throwaway PostgreSQL server (:mod:`devservers.postgres`) as pytest fixtures.

- ``postgres_server`` (session): the running :class:`~devservers.postgres.PostgresServer`; the test is skipped
  with the reason when PostgreSQL's server binaries are missing.
- ``postgres_database`` (function): a fresh empty database ``test_<random>`` on it, as a SQLAlchemy URL
  ``postgresql+psycopg://postgres@127.0.0.1:PORT/test_…``; dropped after the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devservers.postgres import PostgresServer, PostgresUnavailableError

__all__ = ["postgres_database", "postgres_server"]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server running for the whole test session (skips the test if PostgreSQL is missing)."""
    try:
        server = PostgresServer()
    except PostgresUnavailableError as exc:
        pytest.skip(str(exc))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh empty database on the session server, as a SQLAlchemy URL; dropped afterwards."""
    name = postgres_server.create_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)
