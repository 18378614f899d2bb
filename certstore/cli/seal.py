"""``certstore seal``: make, show and verify GB/T 38540 electronic seals (电子印章); list the seal registry and
suspend, resume or revoke a seal (:mod:`certstore.services.seals`; exit 3 for an unknown seal or bad input, 4 for
a change the rules refuse)."""

from __future__ import annotations

import io
from pathlib import Path

import click
from PIL import Image, UnidentifiedImageError

from certstore.cli.common import (
    INDICATION_EXIT,
    Context,
    ExitCode,
    Failure,
    exit_with,
    handle_errors,
    parse_time,
    pass_context,
    print_json,
    read_file,
)
from certstore.crypto.x509 import load_certificates
from certstore.seal import SealFormatError, SealPicture, parse_seal, verify_seal
from certstore.services import seals
from certstore.services.calls import Call
from certstore.services.keys import make_seal_for_signer

FILE = click.Path(path_type=Path, dir_okay=False)
_PICTURE_TYPES = {"PNG": "PNG", "JPEG": "JPG", "GIF": "GIF", "BMP": "BMP"}


@click.group("seal")
def group() -> None:
    """Electronic seals (GB/T 38540 SES_Seal)."""


def picture_from_file(path: Path, width_mm: int) -> SealPicture:
    """A seal picture from an image file; the height follows the image's aspect ratio."""
    data = read_file(path, "picture")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format or "unknown"
            width, height = image.size
    except (UnidentifiedImageError, OSError):
        raise Failure(f"{path}: not an image (PNG, JPG, GIF or BMP expected)") from None
    kind = _PICTURE_TYPES.get(image_format)
    if kind is None:
        raise Failure(f"{path}: image format {image_format} is not allowed in a seal (PNG, JPG, GIF, BMP)")
    return SealPicture(
        type=kind, data=data, width_mm=width_mm, height_mm=max(1, round(width_mm * height / width))
    )


@group.command("make")
@click.option("--signer", required=True, help="Key-store signer allowed to use the seal (签章者).")
@click.option("--name", required=True, help="Seal name as printed (印章名称).")
@click.option("--picture", type=FILE, required=True, help="Seal image: PNG, JPG, GIF or BMP.")
@click.option("--out", type=FILE, required=True, help="Where to write the .esl file.")
@click.option(
    "--valid-days", type=click.IntRange(min=1), default=365, show_default=True, help="Validity from now."
)
@click.option(
    "--size-mm", type=click.IntRange(5, 100), default=40, show_default=True, help="Printed width (mm)."
)
@click.option("--es-id", help="Seal code (印章编码); default: 410100 followed by 8 random digits.")
@click.option("--store-as", help="Also keep the seal in the key store under this name.")
@pass_context
@handle_errors
def make(
    ctx: Context,
    signer: str,
    name: str,
    picture: Path,
    out: Path,
    valid_days: int,
    size_mm: int,
    es_id: str | None,
    store_as: str | None,
) -> None:
    """Make a GB/T 38540 v4 seal signed by the seal maker, listing SIGNER's certificate."""
    store = ctx.keystore
    seal_der = make_seal_for_signer(
        store,
        signer_name=signer,
        display_name=name,
        picture=picture_from_file(picture, size_mm),
        valid_days=valid_days,
        es_id=es_id,
    )
    out.write_bytes(seal_der)
    if store_as:
        store.add_seal(store_as, seal_der)
    seal = parse_seal(seal_der)
    click.echo(
        f"seal {seal.es_id} 「{seal.name}」 valid {seal.valid_start:%Y-%m-%d} … {seal.valid_end:%Y-%m-%d}"
    )
    click.echo(f"wrote {out}")


@group.command("show")
@click.argument("path", type=FILE)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(path: Path, as_json: bool) -> None:
    """Print what the seal in PATH says (without verifying it)."""
    try:
        seal = parse_seal(read_file(path, "seal"))
    except SealFormatError as exc:
        raise Failure(f"{path}: {exc}") from None
    info = seal.describe()
    if as_json:
        print_json(info)
        return
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = "; ".join(map(str, value)) or "—"
        click.echo(f"{key + ':':16} {value}")


@group.command("verify")
@click.argument("path", type=FILE)
@click.option("--json", "as_json", is_flag=True, help="Print the verification as JSON.")
@click.option("--trust", type=FILE, multiple=True, help="Extra trust anchor PEM (repeatable).")
@click.option(
    "--maker",
    type=FILE,
    multiple=True,
    help="Trusted seal-maker certificate PEM (repeatable; see verify --maker).",
)
@click.option("--at", help="Judge validity at this ISO 8601 time instead of now.")
@pass_context
@handle_errors
def verify(
    ctx: Context, path: Path, as_json: bool, trust: tuple[Path, ...], maker: tuple[Path, ...], at: str | None
) -> None:
    """Verify the seal in PATH: structure, maker signature, the maker's authority to make seals, maker
    certificate chain, validity period.

    Exit 0 valid, 1 invalid, 2 indeterminate, 3 unreadable."""
    data = read_file(path, "seal")
    extra = [c for p in trust for c in load_certificates(read_file(p, "trust anchor"))]
    makers = [c for p in maker for c in load_certificates(read_file(p, "seal-maker certificate"))]
    trust_store = ctx.keystore.trust_store().extended(extra).with_makers(makers)
    result = verify_seal(data, trust=trust_store, at=parse_time(at))
    if as_json:
        print_json(result.to_dict())
    if result.seal is None:
        reason = next((c.reason for c in result.checks if c.failed), "unreadable seal")
        raise Failure(f"{path}: {reason}")
    if not as_json:
        seal = result.seal
        click.echo(f"{result.indication.value}  seal {seal.es_id} 「{seal.name}」 (version {seal.version})")
        for check in result.checks:
            click.echo(f"  {check.result.value:<8} {check.name:<16} {check.reason}")
            for warning in check.warnings:
                click.echo(f"  {'WARNING':<8} {'':<16} {warning}")
    exit_with(INDICATION_EXIT[result.indication])


# --- the seal registry (电子印章管理) ----------------------------------------------------------------------


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
@handle_errors
def list_registry(ctx: Context, as_json: bool) -> None:
    """The registered seals with owner and state (the key store's seals are registered first)."""
    registered = seals.list_seals(ctx.application(), Call.operator())
    if as_json:
        print_json([seal.to_dict() for seal in registered])
        return
    for seal in registered:
        state = seal.state
        since = "" if state.status is seals.SealStatus.VALID else f" since {state.effective_at.isoformat()}"
        kept = f" [{seal.keystore_name}]" if seal.keystore_name else ""
        click.echo(
            f"{seal.es_id}  {state.status.value} ({state.status.label}){since}  {seal.name}{kept}  "
            f"owner {seal.owner_name} ({seal.owner_code})"
        )


def _change_command(action: seals.SealAction) -> None:
    verb = {
        "suspend": "Suspend (挂起)",
        "resume": "Resume (恢复) a suspended",
        "revoke": "Revoke (吊销, final)",
    }

    @group.command(action.value, help=f"{verb[action.value]} seal ES_ID as of --effective (default: now).")
    @click.argument("es_id")
    @click.option("--reason", required=True, help="Why (recorded with the change and in the audit log).")
    @click.option(
        "--effective",
        help="ISO 8601 time the change takes effect (default now; a revocation may be dated back to when the "
        "key leaked, not before the seal's validStart). Without offset: UTC.",
    )
    @pass_context
    @handle_errors
    def command(ctx: Context, es_id: str, reason: str, effective: str | None) -> None:
        when = parse_time(effective, "--effective")
        try:
            changed = seals.change_seal(
                ctx.application(), Call.operator(), es_id, action, reason=reason, effective_at=when
            )
        except seals.UnknownSealError as exc:
            raise Failure(str(exc.args[0])) from None
        except seals.SealTransitionError as exc:
            raise Failure(str(exc), ExitCode.REFUSED) from None
        state = changed.state
        click.echo(
            f"seal {changed.es_id} ({changed.name}): {action.value} recorded; now {state.status.value} "
            f"({state.status.label}) since {state.effective_at.isoformat()}"
        )


for _action in seals.SealAction:
    _change_command(_action)
