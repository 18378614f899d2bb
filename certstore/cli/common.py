"""What every command shares: the data directory and its application, exit codes, error reporting, time parsing.

The command line is one of the entry points that build the one application object
(:class:`certstore.app.Application`): :meth:`Context.application` opens it once per invocation (the group closes it
when the command ends); commands hand it to ``certstore.services`` with a
:class:`~certstore.services.calls.Call` of the operator (``Call.operator()``: OS user and host, role operator).
Commands that touch only the key store (``keys``, ``seal``, offline verification) do not open the repository.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from enum import IntEnum
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from certstore.app import Application
from certstore.checks import Indication
from certstore.crypto.encoding import KeyEncodingError
from certstore.crypto.x509 import CertificateError
from certstore.keystore import KeyStore, KeyStoreError
from certstore.records import RecordError
from certstore.services.catalogue import CatalogueConflictError, UnknownCatalogueError
from certstore.store.config import ConfigError, PublicUrlNotConfiguredError
from certstore.store.db import DatabaseURLError, SchemaError
from certstore.store.repository import Repository
from certstore.tsa import TimeStampError

P = ParamSpec("P")
R = TypeVar("R")


class ExitCode(IntEnum):
    OK = 0
    INVALID = 1
    INDETERMINATE = 2
    BAD_INPUT = 3
    REFUSED = 4  # a state change the rules refuse (e.g. a seal already revoked)


INDICATION_EXIT = {
    Indication.VALID: ExitCode.OK,
    Indication.INVALID: ExitCode.INVALID,
    Indication.INDETERMINATE: ExitCode.INDETERMINATE,
}


@dataclass(frozen=True)
class Context:
    data_dir: Path
    _opened: list[Application] = field(default_factory=list, compare=False, repr=False)

    @property
    def keystore(self) -> KeyStore:
        return KeyStore(self.data_dir / "keys")

    def application(self) -> Application:
        """The application of the data directory (:class:`certstore.app.Application`), opened on first use and
        kept for the rest of the command. The embedded SQLite database is migrated to the newest schema on open;
        a PostgreSQL database must be upgraded explicitly (``certstore db upgrade``)."""
        if not self._opened:
            self._opened.append(Application.open(self.data_dir, upgrade_sqlite=True))
        return self._opened[0]

    def repository(self) -> Repository:
        """The repository of :meth:`application` (a shortcut for commands that need nothing else)."""
        return self.application().repo

    def close(self) -> None:
        """Close the application, if one was opened (its database connections)."""
        while self._opened:
            self._opened.pop().close()


pass_context = click.make_pass_decorator(Context)


class Failure(click.ClickException):
    """A user-facing error: printed as ``error: message`` on stderr, exit code 3 (or the one given)."""

    def __init__(self, message: str, code: ExitCode = ExitCode.BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = int(code)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn expected domain errors (bad files, unknown names, wrong passwords) into a message and exit 3."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (
            KeyStoreError,
            KeyEncodingError,
            CertificateError,
            RecordError,
            UnknownCatalogueError,
            CatalogueConflictError,
            DatabaseURLError,
            SchemaError,
            ConfigError,
            PublicUrlNotConfiguredError,
            TimeStampError,
        ) as exc:
            raise Failure(str(exc)) from None
        except OSError as exc:
            raise Failure(f"{exc.strerror}: {exc.filename}") from None

    return wrapper


def read_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise Failure(f"cannot read {what} {path}: {exc.strerror}") from None


def parse_time(value: str | None, option: str = "--at", *, zone: tzinfo = UTC) -> datetime | None:
    """ISO 8601 given as ``option``; a time without offset is taken in ``zone`` (default UTC)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Failure(f"{option}: not an ISO 8601 time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def exit_with(code: ExitCode) -> None:
    """End the command with ``code`` (used for verification verdicts)."""
    raise click.exceptions.Exit(int(code))
