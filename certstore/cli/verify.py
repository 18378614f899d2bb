"""``certstore verify FILE``: verify a presented OFD or PDF e-certificate file (docs/cli.md).

Exit codes: 0 VALID, 1 INVALID, 2 INDETERMINATE, 3 unreadable input or usage error.

``--offline`` does not consult the repository: a file that names an e-certificate (证照标识) is then
INDETERMINATE ("status unknown") unless ``--status FILE`` gives a fresh status snapshot signed by the repository
key (``certstore status snapshot``), which decides the status. A snapshot that is forged, altered, unreadable or
signed by another key is refused: the status stays unknown and the reason says why (exit 2).
"""

from __future__ import annotations

from pathlib import Path

import click

from certstore import messages
from certstore.checks import Check, CheckResult
from certstore.cli.common import (
    INDICATION_EXIT,
    Context,
    Failure,
    exit_with,
    handle_errors,
    parse_time,
    pass_context,
    print_json,
    read_file,
)
from certstore.crypto.trust import TrustStore
from certstore.crypto.x509 import Certificate, load_certificates
from certstore.keystore import REPOSITORY_SIGNER_NAME, KeyStore, KeyStoreError, SignerRole
from certstore.timezones import beijing_time
from certstore.verify import OfdOptions, RepositoryCheck, UnreadableFileError, VerificationReport, verify_file
from certstore.verify.pipeline import OfflineStatus
from certstore.verify.status_list import StatusListError, read_status_list

FILE = click.Path(path_type=Path, dir_okay=False)


def repository_for(ctx: Context) -> RepositoryCheck:
    """The repository the verification consults (status of the certificate at a time, its recorded content):
    the application's view (:meth:`certstore.app.Application.repository_check`)."""
    return ctx.application().repository_check()


@click.command("verify")
@click.argument("path", type=FILE)
@click.option("--json", "as_json", is_flag=True, help="Print the verification report as JSON.")
@click.option("--trust", type=FILE, multiple=True, help="Extra trust anchor PEM (repeatable).")
@click.option(
    "--maker",
    type=FILE,
    multiple=True,
    help="Trusted seal-maker (制章者) certificate PEM whose certificate lacks the seal-maker purpose (repeatable).",
)
@click.option("--at", help="Judge validity at this ISO 8601 time instead of each signature's signing time.")
@click.option(
    "--offline",
    is_flag=True,
    help="Do not consult the repository: status comes from --status, or is unknown (INDETERMINATE).",
)
@click.option(
    "--status",
    "status_file",
    type=FILE,
    help="With --offline: a signed status snapshot ('certstore status snapshot') that decides the status.",
)
@click.option(
    "--signer-cert",
    type=FILE,
    multiple=True,
    help='Known signer certificate PEM for raw Type="Sign" signatures (repeatable); the key store\'s signers are '
    "always known.",
)
@click.option(
    "--compat-sm3-with-z",
    is_flag=True,
    help="Read CheckMethod 1.2.156.10197.1.401.2 as SM3(Z_A ‖ file) with the signer key (dms360 iOFD).",
)
@pass_context
@handle_errors
def verify(
    ctx: Context,
    path: Path,
    as_json: bool,
    trust: tuple[Path, ...],
    maker: tuple[Path, ...],
    at: str | None,
    offline: bool,
    status_file: Path | None,
    signer_cert: tuple[Path, ...],
    compat_sm3_with_z: bool,
) -> None:
    """Verify the OFD or PDF file PATH: package, references, seals and signatures, certificates, times, and
    the certificate's status in the repository (with --offline: in the --status snapshot, else unknown).

    Exit 0 VALID, 1 INVALID, 2 INDETERMINATE, 3 unreadable."""
    if status_file is not None and not offline:
        raise Failure("--status is for --offline verification (online, the repository answers)")
    data = read_file(path, "file")
    when = parse_time(at)
    anchors = [c for p in trust for c in load_certificates(read_file(p, "trust anchor"))]
    given = [c for p in signer_cert for c in load_certificates(read_file(p, "signer certificate"))]
    # Raw Type="Sign" signatures carry no certificate: the key store's own signers are known signers too.
    own = [e.certificate for e in ctx.keystore.signer_entries() if e.role is SignerRole.SIGNER]
    signers = (*given, *own)
    options = OfdOptions(sign_certificates=signers, sm3_with_z_check_values=compat_sm3_with_z)
    makers = [c for p in maker for c in load_certificates(read_file(p, "seal-maker certificate"))]
    trust_store = ctx.keystore.trust_store().extended(anchors).with_makers(makers)
    snapshot = None if status_file is None else read_file(status_file, "status snapshot")
    try:
        report = verify_file(
            data,
            trust=trust_store,
            at=when,
            repository=None if offline else repository_for(ctx),
            file_name=path.name,
            ofd_options=options,
            offline=offline_status(snapshot, trust_store, ctx.keystore) if offline else None,
        )
    except UnreadableFileError as exc:
        raise Failure(f"{path}: unreadable: {exc}") from None
    if as_json:
        print_json(report.to_dict())
    else:
        _print_report(report, path)
    exit_with(INDICATION_EXIT[report.indication])


def offline_status(snapshot: bytes | None, trust: TrustStore, keystore: KeyStore) -> OfflineStatus:
    """The status source of an offline verification: the snapshot, verified against ``trust`` (and the key
    store's repository signer when it has one), or the reason there is none."""
    if snapshot is None:
        return OfflineStatus(problem=messages.Message("reason.status.no_snapshot_option"))
    try:
        return OfflineStatus(read_status_list(snapshot, trust=trust, expected=_repository_signer(keystore)))
    except StatusListError as exc:
        return OfflineStatus(problem=messages.Message("reason.status.snapshot_refused", error=str(exc)))


def _repository_signer(keystore: KeyStore) -> tuple[Certificate, ...]:
    try:
        return (keystore.signer_entry(REPOSITORY_SIGNER_NAME).certificate,)
    except (KeyStoreError, OSError):  # a counter's key store holds only trust anchors: the chain decides
        return ()


def _print_check(check: Check, lang: str) -> None:
    if lang != "zh":
        click.echo(f"    {check.result.value:<8} {check.name:<15} {check.reason}")
        for warning in check.warnings:
            click.echo(f"    {'WARNING':<8} {'':<15} {warning}")
        return
    name = messages.text(f"check.{check.name}", lang) if _known(f"check.{check.name}") else check.name
    result = messages.text(f"result.{check.result.value}", lang)
    click.echo(f"    [{result}] {name}（{check.name}）：{messages.translate_or(check.reason, check.reason)}")
    for warning in check.warnings:
        click.echo(
            f"        {messages.text('cli.verify.warning', lang)}：{messages.translate_or(warning, warning)}"
        )


def _known(key: str) -> bool:
    try:
        messages.entry(key)
    except KeyError:
        return False
    return True


def _reason(report: VerificationReport, lang: str = "en") -> str:
    """The verdict's reason in one line: the first check that failed (INVALID) or could not be established
    (INDETERMINATE), else the first problem; for VALID, how many checks passed. In ``lang`` (``zh``: by the
    message catalogue, the English text where it has no entry)."""
    checks = [
        *(report.certificate.checks if report.certificate is not None else ()),
        *(check for signature in report.signatures for check in signature.checks),
    ]
    wanted = {"INVALID": (CheckResult.FAILED,), "INDETERMINATE": (CheckResult.UNKNOWN, CheckResult.FAILED)}
    for result in wanted.get(report.indication.value, ()):
        decisive = next((check for check in checks if check.result is result), None)
        if decisive is not None:
            reason = " ".join(messages.translate_or(decisive.reason, decisive.reason, lang).split())
            if lang == "zh" and _known(f"check.{decisive.name}"):
                return f"{messages.text(f'check.{decisive.name}', lang)}（{decisive.name}）：{reason}"
            return f"{decisive.name}: {reason}"
    if report.problems:
        return " ".join(messages.translate_or(report.problems[0], report.problems[0], lang).split())
    passed = sum(check.result is CheckResult.PASSED for check in checks)
    return messages.text("cli.verify.all_passed", lang, count=passed)


def _print_report(report: VerificationReport, path: Path) -> None:
    """The human-readable report: English, or Chinese when the locale asks for it (``LANG=zh_CN.UTF-8`` …)."""
    lang = messages.language()
    indication = report.indication.value
    shown = indication if lang != "zh" else f"{indication} {messages.text(f'verdict.{indication}', lang)}"
    click.echo(
        messages.text(
            "cli.verify.head",
            lang,
            indication=shown,
            file=path.name,
            format=report.format.value.upper(),
            count=len(report.signatures),
            problems=len(report.problems),
        )
    )
    click.echo(messages.text("cli.verify.reason", lang, reason=_reason(report, lang)))
    certificate = report.certificate
    if certificate is not None:
        status_check = next((c for c in certificate.checks if c.name == "status"), None)
        if certificate.status is not None:
            status = messages.text("cli.verify.status", lang, status=certificate.status)
        elif status_check is not None and status_check.result is CheckResult.UNKNOWN:
            status = messages.text("cli.verify.status_unknown", lang)
        else:
            status = messages.text("cli.verify.status_unchecked", lang)
        label = f" ({certificate.label})" if certificate.label else ""
        click.echo(
            messages.text(
                "cli.verify.certificate", lang, identifier=certificate.identifier, status=status, label=label
            )
        )
        for check in certificate.checks:
            _print_check(check, lang)
    for signature in report.signatures:
        details = [signature.kind.value]
        if signature.seal is not None:
            details.append(
                messages.text("cli.verify.seal", lang, name=signature.seal.name, id=signature.seal.id)
            )
        if signature.signer is not None:
            details.append(messages.text("cli.verify.signer", lang, subject=signature.signer.subject))
        if signature.signing_time is not None:
            when = (
                signature.signing_time.isoformat() if lang != "zh" else beijing_time(signature.signing_time)
            )
            details.append(messages.text("cli.verify.signed", lang, time=when))
        if lang == "zh":
            details[0] = messages.text(f"page.signature.{signature.kind.value}", lang)
        sign_indication = signature.indication.value
        if lang == "zh":
            sign_indication = messages.text(f"verdict.{sign_indication}", lang)
        click.echo(
            messages.text(
                "cli.verify.signature",
                lang,
                id=signature.id,
                indication=sign_indication,
                details=("; " if lang != "zh" else "；").join(details),
            )
        )
        for check in signature.checks:
            _print_check(check, lang)
    if report.problems:
        click.echo(messages.text("cli.verify.problems", lang))
        for problem in report.problems:
            click.echo(f"    - {messages.translate_or(problem, problem, lang)}")
