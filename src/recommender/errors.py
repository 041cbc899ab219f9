"""The one error hierarchy of the engine.

Every error a user can cause or meet derives from ``RecommenderError`` and carries the exit
code the CLI returns for it (and, once the service exists, the gRPC status it maps to)::

    RecommenderError                 exit 1   INTERNAL
    ├── InvalidInputError            exit 2   INVALID_ARGUMENT  bad argument, field or record
    ├── NotFoundError                exit 3   NOT_FOUND         unknown article id, missing index
    ├── ModelError                   exit 4   FAILED_PRECONDITION  model cannot be loaded or used
    ├── NotReadyError                exit 5   UNAVAILABLE       index not loaded yet
    ├── SnapshotError                exit 6   INTERNAL          a snapshot is corrupt (snapshot.py)
    ├── StoreError                   exit 7   FAILED_PRECONDITION  the working store is unusable
    └── DiskFullError                exit 8   RESOURCE_EXHAUSTED   no space left for a write
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class RecommenderError(Exception):
    """Base class of every error the engine raises on purpose."""

    exit_code = 1


class InvalidInputError(RecommenderError, ValueError):
    """Input that does not fit: names the field (and file and line, where there is one)."""

    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFoundError(RecommenderError, KeyError):
    """A named thing (article id, index directory, model) does not exist."""

    exit_code = 3

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ModelError(RecommenderError):
    """The embedding model cannot be loaded or does not fit the index."""

    exit_code = 4


class NotReadyError(RecommenderError):
    """The engine cannot answer yet (no index loaded)."""

    exit_code = 5


class StoreError(RecommenderError):
    """The working store cannot be used (corrupt or unreadable); the message says how to
    restore it."""

    exit_code = 7


class DiskFullError(RecommenderError):
    """The disk holding the index is full: writes are refused, reads go on."""

    exit_code = 8
    http_status = 507  # Insufficient Storage


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` is the file system (or SQLite on it) running out of space."""
    if isinstance(error, OSError) and error.errno == 28:  # ENOSPC
        return True
    return type(error).__name__ == "OperationalError" and "disk is full" in str(error)


@contextmanager
def disk_full_refused(where: str) -> Iterator[None]:
    """Turn running out of space inside the block into ``DiskFullError`` naming ``where``."""
    try:
        yield
    except Exception as exc:
        if is_disk_full(exc):
            raise DiskFullError(
                f"{where}: the disk is full; writes are refused until space is freed (reads go on)"
            ) from exc
        raise
