"""What git must never track: private keys, databases, data directories (issue 14: ``d2/`` was committed with
``d2/keys/holder-index.key``, the secret of the holder-ID digests).

Every file ``git ls-files`` lists (the index, run from the repository root) is checked by name and by content:

- private keys: a PEM block whose label ends in ``PRIVATE KEY`` (PKCS#8, SEC1, encrypted PKCS#8 — encrypted
  key material is still a key), whatever the file is called; and by name ``*.key``, ``*.p8``, ``*.p12``,
  ``*.pfx`` (the key store's ``holder-index.key``, ``session.key``, exported keys);
- databases: ``*.db``, ``*.sqlite*`` and their journals, or a file starting with the SQLite header;
- data directories: anything under ``d2/`` or a ``.certstore/`` directory (the default ``--data-dir``).

Test data that needs a key makes it at run time (``tests/pki.py``); the only PEM files committed are public
certificates (trust anchors).
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parent.parent

KEY_SUFFIXES = (".key", ".p8", ".p12", ".pfx")
DATABASE_SUFFIXES = (".db", ".db-journal", ".db-wal", ".db-shm")
DATA_DIRECTORIES = ("d2",)  # at the top of the tree
DATA_DIRECTORY_NAMES = (".certstore",)  # anywhere
SQLITE_HEADER = b"SQLite format 3\x00"

# "PRIVATE KEY" is split so that this file does not hold what it looks for.
_PRIVATE = "PRIVATE" + " KEY"
PRIVATE_PEM = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]*" + _PRIVATE.encode() + rb")-----\r?\n"
    rb"(?:[A-Za-z-]+:[^\r\n]*\r?\n)*\r?\n?"  # RFC 1421 headers of legacy encrypted keys (Proc-Type, DEK-Info)
    rb"(?:[A-Za-z0-9+/=]+\r?\n)+"
    rb"-----END \1-----"
)


def _git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, check=False)


def tracked_files() -> list[str]:
    """The paths git tracks (skips when this is not a git checkout, e.g. an unpacked sdist)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    listed = _git("ls-files", "-z")
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout: {listed.stderr.decode(errors='replace').strip()}")
    return [p for p in listed.stdout.decode("utf-8").split("\0") if p]


def _content(path: str) -> bytes:
    """The file as tracked: the work tree's copy, or the index's when it is gone from the work tree."""
    try:
        return (ROOT / path).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        shown = _git("show", f":{path}")
        return shown.stdout if shown.returncode == 0 else b""


def problem_with_name(path: str) -> str | None:
    """Why git must not track a file of this name, or None."""
    pure = PurePosixPath(path)
    name = pure.name.lower()
    if pure.parts[0] in DATA_DIRECTORIES or any(p in DATA_DIRECTORY_NAMES for p in pure.parts[:-1]):
        return "a data directory"
    if name.endswith(KEY_SUFFIXES):
        return "a key file"
    if name.endswith(DATABASE_SUFFIXES) or ".sqlite" in name:
        return "a database file"
    return None


def problem_with_content(data: bytes) -> str | None:
    """Why git must not track a file with this content, or None."""
    if data.startswith(SQLITE_HEADER):
        return "a SQLite database"
    match = PRIVATE_PEM.search(data)
    if match is not None:
        return f"a PEM {match.group(1).decode()} block"
    return None


def test_git_tracks_no_private_key_database_or_data_directory() -> None:
    problems = []
    for path in tracked_files():
        reason = problem_with_name(path) or problem_with_content(_content(path))
        if reason is not None:
            problems.append(f"{path}: {reason}")
    assert not problems, "remove from git (git rm --cached) and ignore:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "path",
    ["d2/certstore.db", "d2/keys/holder-index.key", ".certstore/blobs/ab/cd", "x.key", "x.db", "x.sqlite"],
)
def test_gitignore_keeps_data_out(path: str) -> None:
    """A data directory made in the checkout (``certstore --data-dir d2``, the default ``.certstore``) and stray
    keys or databases are ignored, so ``git add -A`` cannot pick them up."""
    tracked_files()  # skips outside a checkout
    assert _git("check-ignore", "-q", "--no-index", path).returncode == 0, f"{path} is not ignored"


# --- the checks find what they claim ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("d2/certstore.db", "a data directory"),
        ("d2/keys/holder-index.key", "a data directory"),
        ("examples/.certstore/keys/session.key", "a data directory"),
        ("keys/holder-index.key", "a key file"),
        ("deploy/agency.P8", "a key file"),
        ("backup.sqlite3", "a database file"),
        ("state/certstore.db-wal", "a database file"),
        ("keys/trust/root-ca.pem", None),
        ("docs/d2.md", None),
        ("tests/fixtures/third-party/esl/ofdrw-gm__UserV4.esl", None),
    ],
)
def test_names(path: str, problem: str | None) -> None:
    assert problem_with_name(path) == problem


def test_a_private_key_in_any_pem_form_is_found() -> None:
    from certstore.crypto.encoding import dump_private_key
    from certstore.crypto.sm2 import SM2PrivateKey

    key = SM2PrivateKey.generate()
    assert problem_with_content(b"notes\n" + dump_private_key(key)) == f"a PEM {_PRIVATE} block"
    encrypted = dump_private_key(key, password=b"secret")
    assert problem_with_content(encrypted) == f"a PEM ENCRYPTED {_PRIVATE} block"
    legacy = (
        f"-----BEGIN EC {_PRIVATE}-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00FF\n\n"
        f"MHcCAQEEIL0=\n-----END EC {_PRIVATE}-----\n"
    ).encode()
    assert problem_with_content(legacy) == f"a PEM EC {_PRIVATE} block"


def test_certificates_and_quoted_markers_are_not_keys() -> None:
    certificate = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    assert problem_with_content(certificate) is None
    # a marker inside a Python bytes literal (a parser test's truncated input) is not a key block
    quoted = f'b"-----BEGIN {_PRIVATE}-----\\nMIGHAgEAMBMG\\n-----END {_PRIVATE}-----\\n"'.encode()
    assert problem_with_content(quoted) is None


def test_a_sqlite_database_is_found_by_its_header(tmp_path: Path) -> None:
    path = tmp_path / "anything.bin"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (x)")
    connection.close()
    assert problem_with_content(path.read_bytes()) == "a SQLite database"
