"""``certstore audit``: verify the log, export it for auditors, archive months, maintain retention (审计日志).

Contract (``docs/cli.md``): ``audit verify [--json]`` exits 0 when the log is intact and 1 when tampering was found;
``audit export --from ISO --to ISO [--format jsonl|csv] --out FILE`` writes entries with the covering checkpoint and
proof (0). The other commands are operator tools; ``verify-export`` and ``verify-archive`` follow ``verify``'s exit
codes.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from certstore.audit import make_checkpoint, verify_log
from certstore.audit.archive import ArchiveError, archive_month, verify_archive
from certstore.audit.partitions import (
    RetentionError,
    ensure_partitions,
    grant_statements,
    retention_years,
    set_retention_years,
    superuser_statements,
)
from certstore.audit.query import EXPORT_FORMATS, verify_export
from certstore.cli.common import (
    Context,
    ExitCode,
    Failure,
    exit_with,
    handle_errors,
    parse_time,
    pass_context,
    print_json,
)
from certstore.crypto.trust import TrustStore
from certstore.crypto.x509 import Certificate, CertificateError, load_certificates
from certstore.keystore import KeyStoreError
from certstore.services import auditing
from certstore.services.auditing import AuditFilters, InvalidHolderError, NoCheckpointKeyError
from certstore.store.blobs import archive_from_url
from certstore.store.models import AuditArchiveRow

__all__ = ["group"]


@click.group("audit")
def group() -> None:
    """The audit log (审计日志): verify, export, archive, retention."""


def _trust(ctx: Context, extra: tuple[Path, ...]) -> tuple[TrustStore | None, list[Certificate]]:
    """Trust anchors of the key store (+ ``--trust``) and the repository certificate to pin, when present."""
    anchors: list[Certificate] = []
    pinned: list[Certificate] = []
    store = ctx.keystore
    if store.exists():
        anchors.extend(store.trust_store().anchors)
        with contextlib.suppress(KeyStoreError):
            pinned.append(store.signer_entry("repository").certificate)
    for path in extra:
        try:
            anchors.extend(load_certificates(path.read_bytes()))
        except (OSError, CertificateError) as exc:
            raise Failure(f"--trust {path}: {exc}") from None
    return (TrustStore(anchors) if anchors else None), pinned


def _report(document: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        print_json(document)
    else:
        for line in lines:
            click.echo(line)


@group.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--trust", type=click.Path(path_type=Path, dir_okay=False), multiple=True, help="Extra anchor PEM."
)
@pass_context
@handle_errors
def verify_command(ctx: Context, as_json: bool, trust: tuple[Path, ...]) -> None:
    """Recompute the chain and tree from the stored rows and check every checkpoint (0 intact, 1 tampered)."""
    anchors, pinned = _trust(ctx, trust)
    result = verify_log(ctx.repository().db, trust=anchors, pinned=pinned)
    lines = [
        f"entries checked: {result.entries} (positions {result.first_seq}..{result.size - 1})",
        f"checkpoints checked: {result.checkpoints}; archived months: {result.archived_months}; "
        f"events waiting to be chained: {result.pending}",
    ]
    lines += [
        f"{f.kind.upper()} at {f.seq if f.seq is not None else '-'}: {f.message}" for f in result.findings
    ]
    lines.append("INTACT" if result.intact else f"TAMPERING FOUND ({len(result.findings)} findings)")
    _report(result.to_dict(), as_json, lines)
    exit_with(ExitCode.OK if result.intact else ExitCode.INVALID)


@group.command("checkpoint")
@click.option("--json", "as_json", is_flag=True)
@pass_context
@handle_errors
def checkpoint_command(ctx: Context, as_json: bool) -> None:
    """Sign a checkpoint of the log now (pending events are chained first)."""
    app = ctx.application()
    checkpoint = make_checkpoint(app.repo.db, app.repository_sealing_key())
    _report(
        checkpoint.to_dict(),
        as_json,
        [f"checkpoint {checkpoint.id}: {checkpoint.tree_size} entries, root {checkpoint.root_hash.hex()}"],
    )


@group.command("export")
@click.option("--from", "start", required=True, help="occurred_at ≥ (ISO 8601).")
@click.option("--to", "end", required=True, help="occurred_at < (ISO 8601).")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="jsonl", show_default=True)
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--actor", help="Principal, ORGCODE/name.")
@click.option("--organisation", help="Organisation code.")
@click.option("--action", help="Action (route name).")
@click.option("--outcome", type=click.Choice(["allow", "deny", "error"]))
@click.option("--certificate", help="Certificate identifier.")
@click.option("--holder-id-type", help="With --holder-id: the holder's ID type (GB/T 36903 code).")
@click.option("--holder-id", help="The holder's ID number (hashed as the log hashes it, never stored).")
@click.option("--matter", help="事项/办件编号.")
@click.option("--grant", type=int, help="Bulk-access grant id.")
@pass_context
@handle_errors
def export_command(
    ctx: Context,
    start: str,
    end: str,
    fmt: str,
    out: Path,
    actor: str | None,
    organisation: str | None,
    action: str | None,
    outcome: str | None,
    certificate: str | None,
    holder_id_type: str | None,
    holder_id: str | None,
    matter: str | None,
    grant: int | None,
) -> None:
    """Export entries with the checkpoint that covers them and a proof: ``verify-export`` checks it offline.

    The checkpoint is signed now with the repository's key; without one, the newest checkpoint covers the export
    (entries logged after it are not in it)."""
    if bool(holder_id_type) != bool(holder_id):
        raise Failure("--holder-id-type and --holder-id go together")
    filters = AuditFilters(
        start=parse_time(start, "--from"),
        end=parse_time(end, "--to"),
        principal=actor,
        organisation_code=organisation,
        action=action,
        outcome=outcome,
        certificate_identifier=certificate,
        holder_id_type=holder_id_type,
        holder_id=holder_id,
        matter=matter,
        grant_id=grant,
    )
    try:
        made = auditing.export(
            ctx.application(),
            filters,
            fmt,  # type: ignore[arg-type]  # click.Choice(EXPORT_FORMATS)
            signed_now=True,
            newest_without_key=True,
        )
    except InvalidHolderError as exc:
        raise Failure(f"--holder-id: {exc}") from None
    except NoCheckpointKeyError:
        raise Failure(
            "no checkpoint to cover the export and no repository key to sign one (certstore keys init)"
        ) from None
    with out.open("w", encoding="utf-8", newline="") as sink:
        for line in made.lines:
            sink.write(line)
    checkpoint = made.checkpoint
    click.echo(f"exported to {out} under checkpoint {checkpoint.id} ({checkpoint.tree_size} entries)")


@group.command("verify-export")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--trust", type=click.Path(path_type=Path, dir_okay=False), multiple=True, help="Extra anchor PEM."
)
@pass_context
@handle_errors
def verify_export_command(ctx: Context, file: Path, as_json: bool, trust: tuple[Path, ...]) -> None:
    """Verify an export offline (no database): entry hashes, proof, checkpoint signature (0 intact, 1 not)."""
    anchors, pinned = _trust(ctx, trust)
    with file.open(encoding="utf-8", newline="") as source:
        result = verify_export(source, trust=anchors, pinned=pinned)
    lines = [f"entries: {result.entries}; checkpoint tree size: {result.tree_size}"]
    if not result.signer_checked:
        lines.append("warning: no trust anchors or repository certificate given: the signer was not checked")
    lines += [f"PROBLEM: {p}" for p in result.problems]
    lines.append("INTACT" if result.intact else "NOT INTACT")
    _report(result.to_dict(), as_json, lines)
    exit_with(ExitCode.OK if result.intact else ExitCode.INVALID)


@group.command("archive")
@click.option("--month", required=True, help="YYYY-MM (of the time entries were logged).")
@click.option("--json", "as_json", is_flag=True)
@pass_context
@handle_errors
def archive_command(ctx: Context, month: str, as_json: bool) -> None:
    """Seal, export and lock a month in the archive bucket, verify the copy, then drop it from the hot table."""
    app = ctx.application()
    archive = archive_from_url(os.environ.get("CERTSTORE_ARCHIVE_URL"), data_dir=ctx.data_dir)
    anchors, pinned = _trust(ctx, ())
    try:
        key = app.repository_sealing_key()
        result = archive_month(app.repo.db, archive, key, month, trust=anchors, pinned=pinned)
    except (ArchiveError, ValueError) as exc:
        raise Failure(str(exc)) from None
    _report(
        result.to_dict(),
        as_json,
        [
            f"archived {month}: entries {result.first_seq}..{result.end_seq - 1} ({result.entries})",
            f"manifest {result.manifest_key}, locked until {result.retain_until.isoformat()}",
            f"removed from the hot table: {result.removed}",
        ],
    )


@group.command("verify-archive")
@click.option("--month", help="YYYY-MM: its manifest key is looked up in the database.")
@click.option("--manifest", help="The manifest's key (no database needed).")
@click.option("--json", "as_json", is_flag=True)
@pass_context
@handle_errors
def verify_archive_command(ctx: Context, month: str | None, manifest: str | None, as_json: bool) -> None:
    """Verify an archived month from the archive's objects (0 intact, 1 not)."""
    if not (month or manifest):
        raise Failure("give --month or --manifest")
    if manifest is None:
        with ctx.repository().db.session(readonly=True) as session:
            manifest = session.scalar(
                select(AuditArchiveRow.manifest_key).where(AuditArchiveRow.month == month)
            )
        if manifest is None:
            raise Failure(f"{month} is not archived")
    archive = archive_from_url(os.environ.get("CERTSTORE_ARCHIVE_URL"), data_dir=ctx.data_dir)
    anchors, pinned = _trust(ctx, ())
    result = verify_archive(archive, manifest, trust=anchors, pinned=pinned)
    lines = [f"{result.month}: {result.entries} entries"]
    lines += [f"PROBLEM: {f.message}" for f in result.findings]
    lines.append("INTACT" if result.intact else "NOT INTACT")
    _report(result.to_dict(), as_json, lines)
    exit_with(ExitCode.OK if result.intact else ExitCode.INVALID)


@group.command("partitions")
@click.option("--months-ahead", type=click.IntRange(0, 36), default=3, show_default=True)
@pass_context
@handle_errors
def partitions_command(ctx: Context, months_ahead: int) -> None:
    """PostgreSQL: create the monthly partitions of this month and the next ones (run monthly, as the owner)."""
    created = ensure_partitions(ctx.repository().db, months_ahead=months_ahead)
    click.echo("\n".join(f"created {name}" for name in created) or "nothing to create")


@group.command("retention")
@click.option("--years", type=int, help="Raise the retention period to this many years (never lowered).")
@pass_context
@handle_errors
def retention_command(ctx: Context, years: int | None) -> None:
    """Show or raise the retention period (3 years at least, 第二十三条)."""
    db = ctx.repository().db
    if years is not None:
        try:
            set_retention_years(db, years)
        except RetentionError as exc:
            raise Failure(str(exc)) from None
    click.echo(f"retention: {retention_years(db)} years")


@group.command("grants")
@click.option("--role", required=True, help="The application's PostgreSQL role (its login).")
@click.option("--schema", default="public", show_default=True)
def grants_command(role: str, schema: str) -> None:
    """Print the SQL that makes the audit trail append-only for the application's role (run as the owner after
    every ``certstore db upgrade``), then what a superuser runs once (the event triggers)."""
    try:
        statements = grant_statements(role, schema=schema)
        once = superuser_statements(schema=schema)
    except ValueError as exc:
        raise Failure(str(exc)) from None
    click.echo(
        f"-- as the owner of the certstore tables, after every `certstore db upgrade`:\n-- CREATE ROLE {role} LOGIN PASSWORD '…';"
    )
    click.echo(";\n".join(statements) + ";")
    click.echo(
        "-- as a superuser, once after `certstore db upgrade` (not needed when the upgrade ran as one):"
    )
    click.echo(";\n".join(once) + ";")
