"""Files on disk: checksums (snapshot integrity, model fingerprints) and durable writes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_file(path: str | Path) -> None:
    """Flush a written file to disk."""
    _fsync(path)


def fsync_dir(path: str | Path) -> None:
    """Flush a directory's entries (a rename into it) to disk."""
    _fsync(path)


def _fsync(path: str | Path) -> None:
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Less room than this is "full": SQLite needs a few pages for its journal and -shm files.
_FULL_BYTES = 256 * 1024


def disk_full(path: str | Path) -> bool:
    """Whether the file system holding ``path`` (or its nearest existing parent) has no room
    left to write: a SQLite "disk I/O error" there means no space, not a damaged file."""
    where = Path(path)
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        stats = os.statvfs(where)
    except OSError:
        return False
    free = stats.f_bfree if os.geteuid() == 0 else stats.f_bavail  # root may use the reserve
    return free * stats.f_frsize < _FULL_BYTES
