"""Owner-only files and directories (issue 17): the data directory, the SQLite database (with its ``-wal`` and
``-shm``) and the blob store hold holder ID numbers in clear, so whatever the process umask, certstore creates
its directories ``0700`` and its files ``0600`` — as the key store already does for the keys.

Only what certstore creates is set: an existing directory keeps the mode its operator gave it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "create_private_file",
    "make_private_dir",
    "make_private_dirs",
]

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_private_dir(path: Path) -> bool:
    """Create the directory ``path`` (its parent exists) owner-only; False if it was already there."""
    try:
        Path(path).mkdir(PRIVATE_DIR_MODE)
    except FileExistsError:
        return False
    Path(path).chmod(PRIVATE_DIR_MODE)  # the umask may have removed bits of the owner's own
    return True


def make_private_dirs(path: Path) -> list[Path]:
    """Create ``path`` and its missing parents owner-only; returns the directories created, outermost first."""
    missing: list[Path] = []
    current = Path(path)
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    created = []
    for directory in reversed(missing):
        if make_private_dir(directory):
            created.append(directory)
    return created


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty and owner-only unless it exists (a file that other programs then fill — SQLite
    gives its ``-wal`` and ``-shm`` the database file's mode); False if it was already there."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    try:
        os.fchmod(descriptor, PRIVATE_FILE_MODE)
    finally:
        os.close(descriptor)
    return True
