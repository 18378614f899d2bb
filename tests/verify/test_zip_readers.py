"""One file, one reading (issue 16, "Must show"): every OFD the verifier accepts reads as the same files, byte for
byte, in three independent ZIP readers — Python's :mod:`zipfile` (central directory first), Info-ZIP ``unzip``
from Debian (the command line, extracting to a directory) and ``stream-unzip`` (PyPI: a streaming reader that
walks the local headers from byte 0 and never looks at the central directory, like Java's ``ZipInputStream``) —
as :meth:`OfdReader.open` read and the signatures were checked over.

Accepted files: an OFD issued by certstore (the production file maker, ``issuance.make_ofd``, sealed with the
development keys), the four third-party fixtures, and the layouts real writers produce
(``tests/support/zipvariants.py``: data descriptors with and without their signature, deflate option bits,
UTF-8 and plain ASCII names, Unicode Path fields that agree, directory entries, comments, a reordered central
directory, an archive comment). And, to show that the comparison can see a difference: on attack files the
verifier refuses, the readers do disagree.
"""

from __future__ import annotations

import io
import os
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from stream_unzip import stream_unzip

from certstore.catalogue.definitions import shipped_entries
from certstore.keystore import KeyStore
from certstore.packaging.layout import FaceData
from certstore.packaging.ofd.reader import NonCanonicalPackageError, OfdReader
from certstore.records import example_draft, prepare_version
from certstore.services.issuance import make_ofd, sealing_key_for_entry
from certstore.services.keys import init_dev_keys
from tests.support.zipvariants import ACCEPTED, ATTACKS
from tests.verify.builders import OFD_FIXTURES

PAGE = "Doc_0/Pages/Page_0/Content.xml"
FORGED = b"<ofd:Page>FORGED</ofd:Page>"
THIRD_PARTY = sorted(path.name for path in OFD_FIXTURES.glob("*.ofd"))


# --- The three readers ---------------------------------------------------------------------------------------


def _unique(pairs: list[tuple[str, bytes]], reader: str) -> dict[str, bytes]:
    names = [name for name, _ in pairs]
    assert len(set(names)) == len(names), f"{reader} lists a name twice: {names}"
    return dict(pairs)


def read_with_zipfile(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return _unique(
            [(i.filename, archive.read(i)) for i in archive.infolist() if not i.is_dir()], "zipfile"
        )


def read_with_unzip(data: bytes, work: Path, *, strict: bool = True) -> dict[str, bytes]:
    """The tree Info-ZIP ``unzip`` extracts (in a UTF-8 locale); ``strict``: it must not even warn."""
    work.mkdir()
    (work / "file.ofd").write_bytes(data)
    done = subprocess.run(
        ["unzip", "-qq", "-o", "file.ofd", "-d", "out"],
        cwd=work,
        capture_output=True,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
        timeout=60,
        check=False,
    )
    if strict:
        assert (done.returncode, done.stdout, done.stderr) == (0, b"", b""), done
    out = work / "out"
    return {path.relative_to(out).as_posix(): path.read_bytes() for path in out.rglob("*") if path.is_file()}


def read_with_stream_unzip(data: bytes) -> dict[str, bytes]:
    pairs = []
    for raw_name, _size, chunks in stream_unzip([data]):
        content = b"".join(chunks)  # every entry's chunks must be consumed before the next
        name = raw_name.decode("utf-8")
        if not name.endswith("/"):
            pairs.append((name, content))
    return _unique(pairs, "stream-unzip")


# --- The accepted files --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A certificate's OFD as certstore issues it: face, metadata, the issuer's seal (``issuance.make_ofd``)."""
    store = KeyStore(tmp_path_factory.mktemp("keys") / "keys")
    init_dev_keys(store)
    entry = shipped_entries()[0]
    prepared = prepare_version(
        entry, example_draft(entry), version=1, holder_key=bytes(32), serial_key=bytes(range(32))
    )
    return make_ofd(FaceData.from_prepared(prepared), sealing_key_for_entry(store, entry))


ACCEPTED_FILES: dict[str, Callable[[bytes], bytes]] = {
    "certstore-issued": lambda issued: issued,
    **{
        f"third-party/{name}": (lambda _, name=name: (OFD_FIXTURES / name).read_bytes())
        for name in THIRD_PARTY
    },
    **{f"variant/{name}": (lambda _, build=build: build()) for name, build in ACCEPTED.items()},
}


def test_the_accepted_files_are_all_there() -> None:
    """The four third-party fixtures and every accepted variant are in the list."""
    assert len(THIRD_PARTY) == 4
    assert len(ACCEPTED_FILES) == 1 + 4 + len(ACCEPTED)


@pytest.mark.parametrize("make", ACCEPTED_FILES.values(), ids=ACCEPTED_FILES.keys())
def test_three_readers_read_what_the_verifier_read(make, issued: bytes, tmp_path: Path) -> None:
    """zipfile, Info-ZIP unzip and stream-unzip each yield exactly the file names and bytes the verifier read
    (directories aside), and unzip has nothing to warn about."""
    data = make(issued)
    verified = dict(OfdReader.open(data).files)
    assert len(verified) >= 8
    assert read_with_zipfile(data) == verified
    assert read_with_unzip(data, tmp_path / "unzip") == verified
    assert read_with_stream_unzip(data) == verified


# --- The comparison sees a difference where there is one ------------------------------------------------------


def _refused(data: bytes) -> str:
    with pytest.raises(NonCanonicalPackageError) as caught:
        OfdReader.open(data)
    return str(caught.value)


def test_readers_disagree_on_a_hidden_local_entry(tmp_path: Path) -> None:
    """A local entry the central directory does not list: the streaming reader shows it, zipfile and unzip do
    not — and the verifier refuses the file (rule 1)."""
    data = ATTACKS["hidden-local-entry"]()
    hidden = f"{PAGE}.forged"
    assert hidden in read_with_stream_unzip(data)
    assert hidden not in read_with_zipfile(data)
    assert hidden not in read_with_unzip(data, tmp_path / "unzip")
    assert _refused(data).startswith("canonical package rule 1 (one archive): ")


def test_readers_disagree_on_a_prepended_archive(tmp_path: Path) -> None:
    """A forged OFD glued before the real one: the streaming reader shows the forged page, zipfile and unzip
    (which warns about "extra bytes at beginning") the real one — and the verifier refuses the file (rule 1)."""
    data = ATTACKS["prepended-archive"]()
    assert read_with_stream_unzip(data)[PAGE] == FORGED
    assert read_with_zipfile(data)[PAGE] != FORGED
    assert read_with_unzip(data, tmp_path / "unzip", strict=False)[PAGE] != FORGED
    assert _refused(data).startswith("canonical package rule 1 (one archive): ")


def test_readers_disagree_on_a_unicode_path_shadow(tmp_path: Path) -> None:
    """An extra entry whose Unicode Path field names the page: Info-ZIP unzip extracts it over the page, the
    streaming reader keeps the raw names — and the verifier refuses the file (rule 2)."""
    data = ATTACKS["unicode-path-shadow"]()
    assert read_with_unzip(data, tmp_path / "unzip")[PAGE] == FORGED
    assert read_with_stream_unzip(data)[PAGE] != FORGED
    assert "Doc_0/Res/x.xml" in read_with_stream_unzip(data)
    assert _refused(data).startswith("canonical package rule 2 (names): ")
