"""``certstore issue``: lay out, package and seal one certificate, store it in the repository.

The command is the operator's call of the use case :func:`certstore.services.certificates.issue` (actor
``operator:user@host``, entry point ``cli``, the data file as source): authorised, stored and audited in one
transaction like any other issuance; ``certstore audit verify`` then shows its entry.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from certstore.cli.common import Context, Failure, handle_errors, pass_context, read_file
from certstore.packaging.layout import FaceData
from certstore.records import draft_from_json
from certstore.seal import SealFormatError, parse_seal
from certstore.services import certificates, renditions
from certstore.services.calls import Call
from certstore.services.catalogue import get_entry, list_entries, load_shipped
from certstore.services.issuance import SealingKey, file_maker, make_pdf, sealing_key

FILE = click.Path(path_type=Path, dir_okay=False)
DEFAULT_SEAL = "default"


@click.command("issue")
@click.option("--catalogue", "code", required=True, help="Catalogue code of the certificate type.")
@click.option(
    "--data", "data_file", type=FILE, required=True, help="DATA.json (see 'certstore catalogue example')."
)
@click.option("--signer", help="Key-store signer that seals (default: the signer the type's seal lists).")
@click.option(
    "--seal",
    "seal_ref",
    default=DEFAULT_SEAL,
    show_default=True,
    help="Seal: a key-store name or a .esl file (default: the seal the catalogue type names — its issuer's own); "
    "it must belong to the issuer.",
)
@click.option("--out", type=FILE, required=True, help="Where to write the file: .ofd or .pdf.")
@pass_context
@handle_errors
def issue(ctx: Context, code: str, data_file: Path, signer: str | None, seal_ref: str, out: Path) -> None:
    """Issue one certificate: validate DATA.json, lay out the face, package as OFD, seal, store.

    Recorded in the audit log as the operator (OS user@host). Prints the certificate identifier on the last
    line. Pushing the same data again is idempotent."""
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
    app = ctx.application()
    if not list_entries(app.repo):
        load_shipped(app.repo)
    key = _sealing_key(ctx, signer, seal_ref) if signer is not None or seal_ref != DEFAULT_SEAL else None
    base_url = app.sealing_base_url()  # before anything is stored: every file sealed here prints it
    maker = file_maker(key, verify_base_url=base_url) if key is not None else None
    call = Call.operator(source=data_file.name)
    result = certificates.issue(app, call, draft, file_maker=maker)
    cert = result.certificate
    if out.suffix.lower() == ".ofd":
        assert cert.file_key is not None
        out.write_bytes(app.repo.blobs.get(cert.file_key))
    elif key is None:
        out.write_bytes(renditions.pdf_rendition(app, cert))
    else:  # sealed with the key the options chose, like the OFD
        entry = get_entry(app.repo, cert.catalogue_code, cert.catalogue_version)
        out.write_bytes(make_pdf(FaceData.from_certificate(cert, entry), key, verify_base_url=base_url))
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
    return sealing_key(
        ctx.keystore, signer_name=signer, seal_name=None if seal_ref == DEFAULT_SEAL else seal_ref
    )
