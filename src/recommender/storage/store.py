"""The article store (SQLite, WAL): the source of truth behind every index.

It holds the articles, their content hash, their vectors per model, and the stable mapping
from string ids to the 63-bit integer ids FAISS uses (the first 8 bytes of SHA-256 of the id,
so the same article gets the same integer on every machine and every rebuild). Every change
takes the next value of a change counter (``seq``), and deletions are remembered with theirs,
so a reader holding an older copy can catch up with ``changes_since``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recommender.errors import InvalidInputError
from recommender.ingest.records import Article
from recommender.storage.schema import (
    BATCH,
    COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    StoredArticle,
    UpsertOutcome,
    int_id,
    row_to_stored,
)


class ArticleStore:
    """SQLite article store. Thread-safe; writes are durable when the call returns."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.RLock()
        self.last_write_seq = 0  # the change counter of this connection's latest write
        if read_only:
            if not self.path.is_file():
                raise InvalidInputError(f"{self.path}: no such store", field="store")
            uri = f"file:{self.path}?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: an acknowledged write survives a power cut, not only a process crash
            self._conn.execute("PRAGMA synchronous=FULL")
            with self._conn:
                self._conn.executescript(SCHEMA)
                self._conn.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
                )
                self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('seq', '0')")
        self._check_schema()

    def _check_schema(self) -> None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None or row[0] != SCHEMA_VERSION:
            found = row[0] if row else "none"
            raise InvalidInputError(
                f"{self.path} has store schema {found}, this release reads {SCHEMA_VERSION}",
                field="store",
            )

    # -- reading ---------------------------------------------------------------------------

    @property
    def seq(self) -> int:
        """The change counter: the ``seq`` of the latest change."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
        return int(row[0]) if row else 0

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM articles").fetchone()[0])

    def get(self, article_id: str) -> StoredArticle | None:
        """The article with this id, or None."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT {COLUMNS} FROM articles WHERE id = ?", (article_id,)
            ).fetchone()
        return row_to_stored(row) if row else None

    def get_many(self, int_ids: Sequence[int], *, body: bool = True) -> dict[int, StoredArticle]:
        """Articles by FAISS id; ids not in the store are absent from the result. Without
        ``body`` the body is left empty (a list of links does not need it)."""
        columns = COLUMNS if body else COLUMNS.replace("body", "''")
        rows = self._select_in(f"SELECT {columns} FROM articles WHERE int_id IN ({{}})", int_ids)
        return {int(row[0]): row_to_stored(row) for row in rows}

    def content_hashes(self, article_ids: Sequence[str]) -> dict[str, str]:
        """Current content hash of each known id."""
        sql = "SELECT id, content_hash FROM articles WHERE id IN ({})"
        return dict(self._select_in(sql, article_ids))

    def content_hashes_by_key(self) -> dict[int, str]:
        """Every article's content hash, by int id."""
        with self._lock:
            return dict(self._conn.execute("SELECT int_id, content_hash FROM articles"))

    def ids_with_vector(self, model: str, article_ids: Sequence[str]) -> set[str]:
        """Which of these ids have a vector for ``model``."""
        sql = (
            "SELECT a.id FROM articles a JOIN vectors v ON v.int_id = a.int_id "
            "WHERE v.model = ? AND a.id IN ({})"
        )
        return {row[0] for row in self._select_in(sql, article_ids, (model,))}

    def all_ids(self) -> set[str]:
        """Every article id in the store."""
        with self._lock:
            return {r[0] for r in self._conn.execute("SELECT id FROM articles")}

    def iter_articles(self, batch: int = 2000) -> Iterator[StoredArticle]:
        """Every article, in FAISS id order."""
        last = -1
        while True:
            with self._lock:
                rows = self._conn.execute(
                    f"SELECT {COLUMNS} FROM articles WHERE int_id > ? ORDER BY int_id LIMIT ?",
                    (last, batch),
                ).fetchall()
            if not rows:
                return
            for row in rows:
                yield row_to_stored(row)
            last = rows[-1][0]

    def vectors(
        self, model: str, int_ids: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) for ``model``: all of them, or those of ``int_ids`` that exist."""
        ids: list[int] = []
        blobs: list[bytes] = []
        with self._lock:
            if int_ids is None:
                rows: Iterable[tuple[int, bytes]] = self._conn.execute(
                    "SELECT v.int_id, v.vector FROM vectors v JOIN articles a "
                    "ON a.int_id = v.int_id WHERE v.model = ? ORDER BY v.int_id",
                    (model,),
                )
                for i, blob in rows:
                    ids.append(i)
                    blobs.append(blob)
            else:
                sql = "SELECT int_id, vector FROM vectors WHERE model = ? AND int_id IN ({})"
                for i, blob in self._select_in(sql, [int(i) for i in int_ids], (model,)):
                    ids.append(i)
                    blobs.append(blob)
        if not blobs:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), -1)
        return np.asarray(ids, dtype=np.int64), matrix.copy()

    def facets(self) -> list[tuple[int, str, str, str, str, float | None]]:
        """(int_id, id, lang, source, section, published_ts) of every article, by int_id."""
        with self._lock:
            return [
                (int(r[0]), r[1], r[2], r[3], r[4], r[5])
                for r in self._conn.execute(
                    "SELECT int_id, id, lang, source, section, published_ts FROM articles "
                    "ORDER BY int_id"
                )
            ]

    def changes_since(self, seq: int) -> tuple[list[int], list[int]]:
        """(upserted FAISS ids, deleted FAISS ids) with a change counter above ``seq``."""
        upserted, deleted, _ = self.changes_after(seq)
        return upserted, deleted

    def changes_count(self, seq: int) -> int:
        """How many articles were upserted or deleted after change counter ``seq``."""
        with self._lock:
            return sum(
                int(
                    self._conn.execute(
                        f"SELECT COUNT(*) FROM {t} WHERE seq > ?", (seq,)
                    ).fetchone()[0]
                )
                for t in ("articles", "deletions")
            )

    def changes_after(self, seq: int) -> tuple[list[int], list[int], int]:
        """(upserted ids, deleted ids, the change counter they reach), read in one transaction:
        what another process wrote after ``seq``, and where to continue from."""
        with self._lock:
            in_transaction = self._conn.in_transaction
            if not in_transaction:
                self._conn.execute("BEGIN")  # one consistent view of all three reads
            try:
                upserted = [
                    r[0]
                    for r in self._conn.execute("SELECT int_id FROM articles WHERE seq > ?", (seq,))
                ]
                deleted = [
                    r[0]
                    for r in self._conn.execute(
                        "SELECT int_id FROM deletions WHERE seq > ?", (seq,)
                    )
                ]
                row = self._conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
            finally:
                if not in_transaction:
                    self._conn.commit()
        return upserted, deleted, max(seq, int(row[0]) if row else 0)

    def facet_counts(self, column: str) -> dict[str, int]:
        """Number of articles per value of ``lang``, ``source`` or ``section``."""
        if column not in ("lang", "source", "section"):
            raise InvalidInputError(f"cannot count by {column!r}", field="column")
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {column}, COUNT(*) FROM articles GROUP BY {column} ORDER BY 2 DESC"
            ).fetchall()
        return Counter({str(value): int(count) for value, count in rows})

    # -- writing ---------------------------------------------------------------------------

    def upsert(
        self,
        articles: Sequence[Article],
        model: str | None = None,
        vectors: np.ndarray | None = None,
        text_hashes: Sequence[bytes] | None = None,
    ) -> UpsertOutcome:
        """Insert or replace articles (and their vectors for ``model``), in one transaction."""
        outcome = UpsertOutcome([], [], [])
        if not articles:
            return outcome
        known = self.content_hashes([a.id for a in articles])
        with self._lock, self._conn:
            seq = self._next_seq()
            for position, article in enumerate(articles):
                content_hash = article.content_hash()
                previous = known.get(article.id)
                key = int_id(article.id)
                if previous is None:
                    outcome.added.append(article.id)
                elif previous == content_hash:
                    outcome.unchanged.append(article.id)
                else:
                    outcome.updated.append(article.id)
                if previous != content_hash:
                    self._write_article(key, article, content_hash, seq)
                    self._conn.execute("DELETE FROM deletions WHERE int_id = ?", (key,))
                if model is not None and vectors is not None and text_hashes is not None:
                    self._conn.execute(
                        "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)",
                        (
                            key,
                            model,
                            text_hashes[position],
                            np.asarray(vectors[position], dtype=np.float32).tobytes(),
                        ),
                    )
                known[article.id] = content_hash
        return outcome

    def delete(self, article_ids: Iterable[str]) -> list[str]:
        """Remove articles and their vectors; returns the ids that existed."""
        removed: list[str] = []
        with self._lock, self._conn:
            seq = self._next_seq()
            for article_id in article_ids:
                key = int_id(article_id)
                cursor = self._conn.execute("DELETE FROM articles WHERE int_id = ?", (key,))
                if cursor.rowcount:
                    self._conn.execute("DELETE FROM vectors WHERE int_id = ?", (key,))
                    self._conn.execute(
                        "INSERT OR REPLACE INTO deletions VALUES (?, ?, ?)", (key, article_id, seq)
                    )
                    removed.append(article_id)
        return removed

    def backup_to(self, path: str | Path) -> None:
        """A consistent copy of the store at ``path``, ready to open read-only."""
        target = sqlite3.connect(str(path))
        try:
            with self._lock:
                self._conn.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")
            target.commit()
        finally:
            target.close()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    # -- internals -------------------------------------------------------------------------

    def _select_in(
        self, sql: str, values: Sequence[Any], params: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` (whose ``IN ({})`` takes ``values``) read in batches below SQLite's
        limit of host parameters per statement; ``params`` come before the values."""
        rows: list[tuple[Any, ...]] = []
        values = list(values)
        with self._lock:
            for start in range(0, len(values), BATCH):
                part = values[start : start + BATCH]
                marks = ",".join("?" * len(part))
                rows.extend(self._conn.execute(sql.format(marks), [*params, *part]).fetchall())
        return rows

    def _next_seq(self) -> int:
        self._conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'seq'")
        seq = int(self._conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0])
        self.last_write_seq = seq
        return seq

    def _write_article(self, key: int, article: Article, content_hash: str, seq: int) -> None:
        existing = self._conn.execute("SELECT id FROM articles WHERE int_id = ?", (key,)).fetchone()
        if existing and existing[0] != article.id:
            raise InvalidInputError(
                f"ids {existing[0]!r} and {article.id!r} share a 63-bit hash; rename one",
                field="id",
            )
        published = article.published_at
        self._conn.execute(
            "INSERT OR REPLACE INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                article.id,
                article.title,
                article.lead,
                article.body,
                article.lang,
                published.isoformat() if published else None,
                published.timestamp() if published else None,
                article.url,
                article.source,
                article.section,
                json.dumps(list(article.tags), ensure_ascii=False),
                json.dumps(article.metadata, ensure_ascii=False, default=str),
                content_hash,
                seq,
            ),
        )
