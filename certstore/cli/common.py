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
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click

if TYPE_CHECKING:  # imported when a command needs them: ``certstore --help`` stays fast
    from certstore.app import Application
    from certstore.keystore import KeyStore
    from certstore.store.repository import Repository

P = ParamSpec("P")
R = TypeVar("R")


class ExitCode(IntEnum):
    """The exit codes (README, ``certstore --help``)."""

    OK = 0
    INVALID = 1
    INDETERMINATE = 2
    BAD_INPUT = 3
    REFUSED = 4  # a state change the rules refuse (e.g. a seal already revoked, other content under a stored number)
    INTERNAL = 5  # a fault of certstore or its environment, not of the input (reported as one line too)


#: Verdict → exit code. Keyed by the values of :class:`certstore.checks.Indication` (a ``StrEnum``: its members
#: look these up), so that this module imports nothing of the domain.
INDICATION_EXIT = {
    "VALID": ExitCode.OK,
    "INVALID": ExitCode.INVALID,
    "INDETERMINATE": ExitCode.INDETERMINATE,
}


@dataclass(frozen=True)
class Context:
    data_dir: Path
    _opened: list[Application] = field(default_factory=list, compare=False, repr=False)

    @property
    def keystore(self) -> KeyStore:
        from certstore.keystore import KeyStore

        return KeyStore(self.data_dir / "keys")

    def application(self) -> Application:
        """The application of the data directory (:class:`certstore.app.Application`), opened on first use and
        kept for the rest of the command. The embedded SQLite database is migrated to the newest schema on open;
        a PostgreSQL database must be upgraded explicitly (``certstore db upgrade``)."""
        if not self._opened:
            from certstore.app import Application

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
    """A user-facing error: printed as one line ``Error: message`` on stderr, exit code 3 (or the one given)."""

    def __init__(self, message: str, code: ExitCode = ExitCode.BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = int(code)


def _expected_errors() -> tuple[type[Exception], ...]:
    """The domain errors whose message is for the user as it stands (imported when an error occurs)."""
    from certstore.crypto.encoding import KeyEncodingError
    from certstore.crypto.x509 import CertificateError
    from certstore.keystore import KeyStoreError
    from certstore.records import RecordError
    from certstore.services.catalogue import CatalogueConflictError, UnknownCatalogueError
    from certstore.store.config import ConfigError, PublicUrlNotConfiguredError
    from certstore.store.db import DatabaseURLError, SchemaError
    from certstore.tsa import TimeStampError

    return (
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
    )


def _refused_errors() -> tuple[type[Exception], ...]:
    """Errors of a change the rules refuse (exit 4): other content under a stored number and version, a state
    transition the lifecycle forbids, an actor without the right."""
    from certstore.access import AccessDeniedError, AuthenticationError
    from certstore.services.certificates import DuplicateConflictError, NotLatestVersionError

    return (DuplicateConflictError, NotLatestVersionError, AccessDeniedError, AuthenticationError)


def describe_error(exc: BaseException) -> tuple[str, ExitCode]:
    """One line and an exit code for an error no command turned into a :class:`Failure` (used by ``main``)."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, _refused_errors()):
        return f"refused: {message}", ExitCode.REFUSED
    if isinstance(exc, _expected_errors()):
        return message, ExitCode.BAD_INPUT
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}", ExitCode.BAD_INPUT
    if isinstance(exc, (ValueError, LookupError)):  # the services' input errors (…InputError, …NotFoundError)
        return message, ExitCode.BAD_INPUT
    return (
        f"internal error ({type(exc).__name__}: {message}); CERTSTORE_DEBUG=1 prints the traceback",
        ExitCode.INTERNAL,
    )


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn expected domain errors (bad files, unknown names, wrong passwords) into a message and exit 3, and a
    change the rules refuse (e.g. other content under a stored certificate number) into exit 4."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit):
            raise
        except Exception as exc:
            if isinstance(exc, _refused_errors()):
                raise Failure(describe_error(exc)[0], ExitCode.REFUSED) from None
            if isinstance(exc, _expected_errors()):
                raise Failure(str(exc)) from None
            if isinstance(exc, OSError) and exc.strerror:
                raise Failure(f"{exc.strerror}: {exc.filename}") from None
            raise

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
