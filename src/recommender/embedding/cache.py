"""Embedding cache: vectors keyed by (model identity, SHA-256 of the embedded text), in SQLite."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from recommender.errors import DiskFullError
from recommender.files import disk_full

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    model TEXT NOT NULL,
    text_hash BLOB NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (model, text_hash)
) WITHOUT ROWID;
"""
_BATCH = 500  # below SQLite's default limit of host parameters per statement

_log = logging.getLogger(__name__)


def text_hash(text: str) -> bytes:
    """The cache key of a text: SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).digest()


class EmbeddingCache:
    """A persistent map (model identity, text hash) -> float32 vector. Safe across threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn = self._open()
        except sqlite3.DatabaseError as exc:
            if disk_full(self.path.parent):  # not damaged: no room; keep every vector
                raise DiskFullError(f"{self.path.parent}: the disk is full ({exc})") from None
            # only a cache: set the damaged file aside (for a look) and start an empty one
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            _log.warning("embedding cache %s is unreadable (%s): moved to %s, starting empty",
                         self.path, exc, aside)  # fmt: skip
            self.path.rename(aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self._conn = self._open()

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(str(self.path), check_same_thread=False)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(_SCHEMA)
            connection.execute("SELECT count(*) FROM embeddings LIMIT 1").fetchone()
        except sqlite3.DatabaseError:
            connection.close()
            raise
        return connection

    def get_many(self, model: str, hashes: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The cached vectors among ``hashes`` (missing ones are absent from the result)."""
        found: dict[bytes, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(hashes), _BATCH):
                part = list(hashes[start : start + _BATCH])
                marks = ",".join("?" * len(part))
                rows = self._conn.execute(
                    "SELECT text_hash, vector FROM embeddings"
                    f" WHERE model = ? AND text_hash IN ({marks})",
                    [model, *part],
                )
                for key, blob in rows:
                    found[bytes(key)] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, model: str, items: Iterable[tuple[bytes, np.ndarray]]) -> None:
        """Store vectors (float32) under their text hashes; one transaction."""
        rows = [(model, key, np.asarray(v, dtype=np.float32).tobytes()) for key, v in items]
        with self._lock, self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO embeddings (model, text_hash, vector) VALUES (?, ?, ?)",
                rows,
            )

    def count(self, model: str | None = None) -> int:
        """Number of cached vectors, for one model or all."""
        with self._lock:
            if model is None:
                row = self._conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()
            else:
                row = self._conn.execute(
                    "SELECT COUNT(*) FROM embeddings WHERE model = ?", (model,)
                ).fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()
