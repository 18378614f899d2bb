"""``certstore issue``: lay out, package and seal one certificate, store it in the repository."""

from __future__ import annotations

import json
from pathlib import Path

import click

from certstore.cli.common import Context, Failure, handle_errors, pass_context, read_file
from certstore.packaging.layout import FaceData
from certstore.records import draft_from_json
from certstore.seal import SealFormatError, parse_seal
from certstore.services import certificates
from certstore.services.catalogue import get_entry, list_entries, load_shipped
from certstore.services.issuance import SealingKey, file_maker, make_pdf, sealing_key

FILE = click.Path(path_type=Path, dir_okay=False)


@click.command("issue")
@click.option("--catalogue", "code", required=True, help="Catalogue code of the certificate type.")
@click.option(
    "--data", "data_file", type=FILE, required=True, help="DATA.json (see 'certstore catalogue example')."
)
@click.option("--signer", help="Key-store signer that seals (default: the agency signer).")
@click.option(
    "--seal", "seal_ref", default="default", show_default=True, help="Seal: a key-store name or a .esl file."
)
@click.option("--out", type=FILE, required=True, help="Where to write the file: .ofd or .pdf.")
@click.option("--actor", default="cli", show_default=True, help="Who issues, for the lifecycle record.")
@pass_context
@handle_errors
def issue(
    ctx: Context, code: str, data_file: Path, signer: str | None, seal_ref: str, out: Path, actor: str
) -> None:
    """Issue one certificate: validate DATA.json, lay out the face, package as OFD, seal, store.

    Prints the certificate identifier on the last line. Pushing the same data again is idempotent."""
    if out.suffix.lower() not in (".ofd", ".pdf"):
        raise Failure(f"--out {out}: the file name must end in .ofd or .pdf")
    try:
        document = json.loads(read_file(data_file, "data"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Failure(f"{data_file}: not JSON ({exc})") from None
    if isinstance(document, dict):
        document.setdefault("catalogue", code)
        if document["catalogue"] != code:
            raise Failure(f"{data_file} is for catalogue {document['catalogue']}, not {code}")
    draft = draft_from_json(document)
    repo = ctx.repository()
    if not list_entries(repo):
        load_shipped(repo)
    key = _sealing_key(ctx, signer, seal_ref)
    result = certificates.issue(repo, draft, actor=actor, file_maker=file_maker(key))
    cert = result.certificate
    if out.suffix.lower() == ".ofd":
        assert cert.file_key is not None
        out.write_bytes(repo.blobs.get(cert.file_key))
    else:
        entry = get_entry(repo, cert.catalogue_code, cert.catalogue_version)
        out.write_bytes(make_pdf(FaceData.from_certificate(cert, entry), key))
    click.echo(
        f"{'issued' if result.created else 'already stored (same data)'}: {cert.name} {cert.certificate_number}"
    )
    click.echo(f"wrote {out}")
    click.echo(cert.identifier)


def _sealing_key(ctx: Context, signer: str | None, seal_ref: str) -> SealingKey:
    """``--seal`` names a seal in the key store, or a .esl file."""
    path = Path(seal_ref)
    if path.suffix.lower() == ".esl" or path.exists():
        data = read_file(path, "seal")
        try:
            parse_seal(data)
        except SealFormatError as exc:
            raise Failure(f"{path}: {exc}") from None
        return sealing_key(ctx.keystore, signer_name=signer, seal_der=data)
    return sealing_key(ctx.keystore, signer_name=signer, seal_name=seal_ref)
