"""``certstore keys``: the development hierarchy, importing and exporting keys, listing the key store."""

from __future__ import annotations

import os
from pathlib import Path

import click

from certstore.cli.common import Context, Failure, handle_errors, pass_context, print_json, read_file
from certstore.crypto.encoding import dump_private_key, dump_public_key
from certstore.crypto.x509 import load_certificates
from certstore.keystore import KeyStoreError, SignerRole
from certstore.seal import SealFormatError, parse_seal
from certstore.services.keys import add_issuer_seals, add_missing_tsa, import_signer, init_dev_keys
from certstore.store.config import (
    CONFIG_FILE,
    HOW_TO_SET,
    ConfigError,
    normalise_public_url,
    resolve_public_url,
    save_public_url,
)

FILE = click.Path(path_type=Path, dir_okay=False)


@click.group("keys")
def group() -> None:
    """Signing keys, certificates, seals and trust anchors."""


@group.command("init")
@click.option("--force", is_flag=True, help="Delete an existing key store and start again.")
@click.option("--if-missing", is_flag=True, help="Keep the key store (exit 0) when keys already exist.")
@click.option(
    "--public-url",
    metavar="URL",
    help="The public base URL printed in the QR code and links of every sealed file (https://HOST[/PATH]); "
    f"kept in <data-dir>/{CONFIG_FILE}, also with --if-missing. Nothing is sealed without one.",
)
@pass_context
@handle_errors
def init(ctx: Context, force: bool, if_missing: bool, public_url: str | None) -> None:
    """Create the dev hierarchy under one root CA: the seal maker, each shipped issuer's signer and seal (named
    by its credit code), the repository's signer and copy seal, and the time-stamp authority key; with
    --public-url, record the repository's public URL too (change it later: certstore config set public-url)."""
    url = normalise_public_url(public_url, source="--public-url") if public_url is not None else None
    store = ctx.keystore
    if if_missing and store.exists() and not force:
        click.echo(f"key store {store.root} already initialised")
        for added in add_issuer_seals(store):  # a key store of an earlier version: the issuers' own seals
            click.echo(f"{'added seal of ' + added.name + ':':28} {added.seal_path}")
        tsa = add_missing_tsa(store)  # … and its time-stamp authority
        if tsa is not None:
            click.echo(f"{'added time-stamp authority:':28} {tsa.cert_path}")
    else:
        hierarchy = init_dev_keys(store, force=force)
        for label, path in hierarchy.pem_paths().items():
            click.echo(f"{label + ':':28} {path}")
    if url is not None:
        save_public_url(ctx.data_dir, url)
        click.echo(f"{'public URL:':28} {url} ({ctx.data_dir / CONFIG_FILE})")
    else:
        try:
            configured = resolve_public_url(ctx.data_dir, os.environ)[0]
        except ConfigError as exc:  # the keys are made; say what stands in the way of sealing
            click.echo(f"note: {exc}", err=True)
        else:
            if configured is None:
                click.echo(
                    f"note: no public URL configured, so nothing can be sealed yet: {HOW_TO_SET}", err=True
                )


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
@handle_errors
def list_(ctx: Context, as_json: bool) -> None:
    """List signers, seals and trust anchors."""
    store = ctx.keystore
    signers = [
        {
            "name": e.name,
            "role": e.role.value,
            "subject": e.certificate.subject,
            "not_after": e.certificate.not_after.isoformat(),
            "encrypted": e.password_env is not None,
            "cert": str(e.cert_path),
        }
        for e in store.signer_entries()
    ]
    seals: list[dict[str, object]] = []
    for path in store.seal_files():
        try:
            info = parse_seal(path.read_bytes()).describe()
            seals.append({**info, "name": path.stem, "seal_name": info["name"], "file": str(path)})
        except SealFormatError as exc:
            seals.append({"name": path.stem, "error": str(exc), "file": str(path)})
    anchors = [
        {"subject": c.subject, "not_after": c.not_after.isoformat(), "file": str(p)}
        for p in store.trust_anchor_files()
        for c in load_certificates(p.read_bytes())
    ]
    if as_json:
        print_json(
            {"key_store": str(store.root), "signers": signers, "seals": seals, "trust_anchors": anchors}
        )
        return
    click.echo(f"key store: {store.root}")
    click.echo("signers:" if signers else "signers: none (run 'certstore keys init')")
    for s in signers:
        lock = " [encrypted]" if s["encrypted"] else ""
        click.echo(
            f"  {s['name']:<14} {s['role']:<11} {s['subject']}  (until {str(s['not_after'])[:10]}){lock}"
        )
    click.echo("seals:" if seals else "seals: none")
    for s in seals:
        if "error" in s:
            click.echo(f"  {s['name']:<14} unreadable: {s['error']}")
        else:
            start, end = str(s["valid_start"])[:10], str(s["valid_end"])[:10]
            click.echo(f"  {s['name']:<14} {s['id']} 「{s['seal_name']}」 {start} … {end}")
    click.echo("trust anchors:" if anchors else "trust anchors: none")
    for a in anchors:
        click.echo(f"  {a['subject']}  (until {a['not_after'][:10]})")


@group.command("import")
@click.option("--name", required=True, help="Name of the signer in the key store.")
@click.option(
    "--key", "key_file", type=FILE, required=True, help="SM2 private key (PEM/DER, PKCS#8 or SEC1)."
)
@click.option("--cert", "cert_file", type=FILE, required=True, help="The key's certificate (PEM/DER).")
@click.option("--chain", "chain_file", type=FILE, help="Issuing CA certificates up to the root (PEM).")
@click.option("--password-env", metavar="VAR", help="Environment variable holding the key's password.")
@click.option(
    "--role",
    type=click.Choice([SignerRole.SIGNER.value, SignerRole.SEAL_MAKER.value]),
    default=SignerRole.SIGNER.value,
    show_default=True,
    help="What the key does.",
)
@pass_context
@handle_errors
def import_(
    ctx: Context,
    name: str,
    key_file: Path,
    cert_file: Path,
    chain_file: Path | None,
    password_env: str | None,
    role: str,
) -> None:
    """Import an existing SM2 key + certificate; its chain root becomes a trust anchor."""
    entry = import_signer(
        ctx.keystore,
        name=name,
        key_pem=read_file(key_file, "key"),
        cert_pem=read_file(cert_file, "certificate"),
        chain_pem=read_file(chain_file, "chain") if chain_file else None,
        password_env=password_env,
        role=SignerRole(role),
    )
    click.echo(f"imported {entry.role.value} {entry.name!r}: {entry.certificate.subject}")
    click.echo(f"certificate: {entry.cert_path}")


@group.command("export")
@click.argument("name")
@click.option(
    "--what",
    type=click.Choice(["cert", "chain", "public-key", "private-key"]),
    default="cert",
    show_default=True,
    help="What to export.",
)
@click.option("--out", type=FILE, help="Write here instead of standard output.")
@click.option("--password-env", metavar="VAR", help="For private-key: encrypt with the password in $VAR.")
@pass_context
@handle_errors
def export(ctx: Context, name: str, what: str, out: Path | None, password_env: str | None) -> None:
    """Export signer NAME's certificate, chain, public key or (encrypted) private key as PEM."""
    store = ctx.keystore
    entry = store.signer_entry(name)
    if what == "cert":
        data = entry.certificate.pem
    elif what == "chain":
        data = entry.certificate.pem + b"".join(c.pem for c in entry.chain)
    elif what == "public-key":
        data = dump_public_key(entry.certificate.public_key)
    else:
        if not password_env:
            raise Failure("exporting a private key requires --password-env VAR (it is written encrypted)")
        password = os.environ.get(password_env)
        if not password:
            raise KeyStoreError(f"--password-env {password_env}: the variable is not set or empty")
        data = dump_private_key(store.private_key(name), password=password.encode())
    if out is None:
        click.echo(data.decode(), nl=False)
        return
    out.write_bytes(data)
    if what == "private-key":
        out.chmod(0o600)
    click.echo(f"wrote {out}", err=True)


@group.group("trust")
def trust() -> None:
    """Trust anchors: the root certificates every verification path must end in."""


@trust.command("add")
@click.argument("name")
@click.argument("cert_file", metavar="CERT.pem", type=FILE)
@pass_context
@handle_errors
def trust_add(ctx: Context, name: str, cert_file: Path) -> None:
    """Trust the root certificate in CERT.pem as anchor NAME (e.g. a city's root at the provincial repository,
    so the files it aggregates verify). Restart ``certstore serve`` to use it."""
    certificates = load_certificates(read_file(cert_file, "certificate"))
    if len(certificates) != 1:
        raise Failure(f"{cert_file}: expected one certificate, found {len(certificates)}")
    anchor = certificates[0]
    if not anchor.is_self_issued:
        raise Failure(f"{cert_file}: {anchor.subject} is not a root certificate (issued by {anchor.issuer})")
    store = ctx.keystore
    for existing in store.trust_anchor_files():
        if existing.stem == name and load_certificates(existing.read_bytes()) != [anchor]:
            raise Failure(f"trust anchor {name!r} already exists with another certificate")
    path = store.add_trust_anchor(name, anchor)
    click.echo(f"trusted {anchor.subject} (until {anchor.not_after.isoformat()[:10]}): {path}")


@group.group("maker")
def maker() -> None:
    """Trusted seal makers (受信任的制章者): another vendor's seal-making system whose certificates do not assert
    certstore's seal-maker purpose. Seals they made verify only once their certificate is trusted here."""


@maker.command("add")
@click.argument("name")
@click.argument("cert_file", metavar="CERT.pem", type=FILE)
@pass_context
@handle_errors
def maker_add(ctx: Context, name: str, cert_file: Path) -> None:
    """Trust the seal-maker certificate in CERT.pem as maker NAME. Restart ``certstore serve`` to use it."""
    certificates = load_certificates(read_file(cert_file, "certificate"))
    if len(certificates) != 1:
        raise Failure(f"{cert_file}: expected one certificate, found {len(certificates)}")
    if certificates[0].is_ca:
        raise Failure(f"{cert_file}: {certificates[0].subject} is a CA certificate, not a seal maker's")
    path = ctx.keystore.add_trusted_maker(name, certificates[0])
    click.echo(f"trusted seal maker {certificates[0].subject}: {path}")
