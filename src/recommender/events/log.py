"""The event log: one SQLite file beside the store (``events.sqlite``).

- **Compact.** Article ids are stored as the engine's 63-bit int ids (``int_id``), an
  impression's list as packed int64s, the reader as 16 bytes of HMAC-SHA256 of the site's key
  under a per-index secret (``events.secret``, created once, never published): the same key
  always maps to the same reader, but the log does not hold the key, and no address is kept.
- **Durable, batched.** WAL with ``synchronous=FULL``: an acknowledged event survives a crash.
  Concurrent appends are committed together (group commit: the first caller writes every
  waiting caller's events in one transaction), so 100 browsers sending one event each cost a
  few fsyncs, not 100. Several server processes share the file (SQLite's locking).
- **Retention.** Events older than ``retention_days`` (default 30; 0 keeps everything) are
  deleted on open and then at most hourly; ``forget`` deletes one reader's events at once.
- **Counts** by kind are kept in the same transactions, so ``Stats`` reads three numbers.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recommender.errors import InvalidInputError, StoreError
from recommender.events.records import HOME, KINDS, Event
from recommender.storage.schema import int_id

EVENTS_FILE = "events.sqlite"
SECRET_FILE = "events.secret"
DEFAULT_RETENTION_DAYS = 30.0
PRUNE_EVERY_S = 3600.0
FORGOTTEN_KEPT_S = 3600.0  # how long other processes are told of a forgotten reader
HOME_ID = -1  # the source of a list not under an article
Row = tuple[Any, ...]  # an events row, as inserted
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    kind INTEGER NOT NULL,
    reader BLOB NOT NULL,
    source INTEGER,
    target INTEGER,
    position INTEGER,
    ids BLOB
);
CREATE INDEX IF NOT EXISTS events_by_reader ON events (reader);
CREATE INDEX IF NOT EXISTS events_by_time ON events (at);
CREATE TABLE IF NOT EXISTS counts (kind INTEGER PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS forgotten (n INTEGER PRIMARY KEY, reader BLOB NOT NULL, at REAL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class StoredEvent:
    """An event as the log keeps it: int ids (``HOME_ID`` for a front page, None for none)."""

    seq: int
    at: float
    kind: str
    reader: bytes
    source: int | None
    target: int | None
    position: int | None
    ids: tuple[int, ...]


class _Ticket:
    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows
        self.done = False
        self.error: BaseException | None = None


class EventLog:
    """Append, count, read back, forget and prune the events of one index directory."""

    def __init__(self, index_dir: str | Path) -> None:
        directory = Path(index_dir)
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / EVENTS_FILE
        self._secret = _secret(directory / SECRET_FILE)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                       timeout=30)  # fmt: skip
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a usable event log ({exc})") from None
        self._lock = threading.Lock()  # the connection: one statement sequence at a time
        self._queue: list[_Ticket] = []
        self._cond = threading.Condition()
        self._leader = False
        self._pruned_at = 0.0
        self.prune()

    # -- writing ---------------------------------------------------------------------------

    def reader_hash(self, reader: str) -> bytes:
        """The 16 bytes stored for a reader key."""
        return hmac.new(self._secret, reader.encode("utf-8"), hashlib.sha256).digest()[:16]

    def append(self, events: Sequence[Event]) -> int:
        """Store ``events`` durably (one transaction with whatever other callers are waiting
        to append); returns how many were stored."""
        ticket = _Ticket([self._row(event) for event in events])
        if not ticket.rows:
            return 0
        with self._cond:
            self._queue.append(ticket)
            while self._leader and not ticket.done:
                self._cond.wait()
            if not ticket.done:
                self._leader = True
        if not ticket.done:
            self._lead()
        if ticket.error is not None:
            raise ticket.error
        return len(ticket.rows)

    def _lead(self) -> None:
        """Commit the waiting callers' events, batch after batch, until none wait."""
        try:
            while True:
                with self._cond:
                    batch, self._queue = self._queue, []
                if not batch:
                    return
                error: BaseException | None = None
                try:
                    self._commit([row for ticket in batch for row in ticket.rows])
                except BaseException as exc:  # every caller of the batch hears of it
                    error = exc
                with self._cond:
                    for ticket in batch:
                        ticket.done, ticket.error = True, error
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._leader = False
                self._cond.notify_all()

    def _commit(self, rows: list[Row]) -> None:
        added = np.bincount([row[1] for row in rows], minlength=len(KINDS))
        with self._lock, _transaction(self._db):
            self._db.executemany(
                "INSERT INTO events (at, kind, reader, source, target, position, ids) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._count(added)
        if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
            self.prune()

    def _row(self, event: Event) -> Row:
        source = HOME_ID if event.source == HOME else int_id(event.source) if event.source else None
        ids = np.array([int_id(i) for i in event.ids], dtype="<i8").tobytes() if event.ids else None
        return (
            event.at,
            KINDS.index(event.kind),
            self.reader_hash(event.reader),
            source,
            int_id(event.target) if event.target else None,
            event.position if event.kind == "click" else None,
            ids,
        )

    def _count(self, change: np.ndarray) -> None:
        for kind, n in enumerate(change.tolist()):
            if n:
                self._db.execute(
                    "INSERT INTO counts (kind, n) VALUES (?, ?) "
                    "ON CONFLICT (kind) DO UPDATE SET n = n + excluded.n",
                    (kind, n),
                )

    def _delete(self, where: str, args: tuple[Any, ...], forgotten: bytes | None = None) -> int:
        with self._lock, _transaction(self._db):
            if forgotten is not None:  # other processes drop the reader's history at once
                self._db.execute(
                    "INSERT INTO forgotten (reader, at) VALUES (?, ?)", (forgotten, time.time())
                )
            gone = np.zeros(len(KINDS), dtype=np.int64)
            for kind, n in self._db.execute(
                f"SELECT kind, count(*) FROM events WHERE {where} GROUP BY kind", args
            ):
                gone[kind] = n
            self._db.execute(f"DELETE FROM events WHERE {where}", args)
            self._count(-gone)
            if gone.any():  # signals kept from the log must be recomputed (``generation``)
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('generation', '1') ON CONFLICT (key) "
                    "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
                )
        return int(gone.sum())

    @property
    def generation(self) -> int:
        """Bumped whenever events are deleted (forget, retention): what was counted from
        them must be counted again."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def forget(self, reader: str) -> int:
        """Delete every event of one reader key; returns how many there were."""
        if not reader:
            raise InvalidInputError("give the reader key to forget", field="reader")
        key = self.reader_hash(reader)
        return self._delete("reader = ?", (key,), forgotten=key)

    def forgotten_after(self, n: int) -> list[tuple[int, bytes]]:
        """Readers forgotten since entry ``n`` (entry number, reader hash), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT n, reader FROM forgotten WHERE n > ? ORDER BY n", (n,)
            ).fetchall()
        return [(int(number), bytes(reader)) for number, reader in rows]

    def last_forgotten(self) -> int:
        """The number of the latest forget (0: none)."""
        with self._lock:
            row = self._db.execute("SELECT max(n) FROM forgotten").fetchone()
        return int(row[0] or 0)

    def prune(self, now: float | None = None) -> int:
        """Delete the events older than the retention; returns how many."""
        self._pruned_at = time.monotonic()
        days = self.retention_days
        if days <= 0:
            return 0
        moment = time.time() if now is None else now
        with self._lock, _transaction(self._db):  # a forget only needs telling for a moment
            self._db.execute("DELETE FROM forgotten WHERE at < ?", (moment - FORGOTTEN_KEPT_S,))
        return self._delete("at < ?", (moment - days * 86400,))

    @property
    def retention_days(self) -> float:
        """Days an event is kept (0: for ever)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'retention_days'").fetchone()
        return float(row[0]) if row else DEFAULT_RETENTION_DAYS

    def set_retention(self, days: float) -> None:
        """Keep events ``days`` days (0: for ever), from now on and for every process."""
        if not days >= 0:
            raise InvalidInputError(f"must be 0 or more days, got {days}", field="retention_days")
        with self._lock, _transaction(self._db):
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('retention_days', ?)", (days,)
            )
        self.prune()

    # -- reading ---------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Events stored, by kind."""
        with self._lock:
            rows = dict(self._db.execute("SELECT kind, n FROM counts").fetchall())
        return {kind: int(rows.get(n, 0)) for n, kind in enumerate(KINDS)}

    def events(
        self, since: float = 0.0, reader: str | None = None, after_seq: int = 0
    ) -> Iterator[StoredEvent]:
        """Stored events at or after ``since`` (Unix seconds) and after ``after_seq``, in the
        order they were stored; one reader's with ``reader``. Reads through its own
        connection, so appends go on meanwhile."""
        query = "SELECT seq, at, kind, reader, source, target, position, ids FROM events " \
                "WHERE at >= ? AND seq > ?"  # fmt: skip
        args: tuple[Any, ...] = (since, after_seq)
        if reader is not None:
            query, args = query + " AND reader = ?", (*args, self.reader_hash(reader))
        db = sqlite3.connect(self.path, timeout=30)
        try:
            for seq, at, kind, who, source, target, position, ids in db.execute(
                query + " ORDER BY seq", args
            ):
                shown = tuple(np.frombuffer(ids, dtype="<i8").tolist()) if ids else ()
                yield StoredEvent(seq, at, KINDS[kind], who, source, target, position, shown)
        finally:
            db.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self.db.execute("ROLLBACK" if error is not None else "COMMIT")


def _secret(path: Path) -> bytes:
    """The index's reader-key secret: created once (atomically: several processes may race
    to create it), then read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    staging = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}")
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(descriptor, os.urandom(32))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    try:
        os.link(staging, path)  # fails if another process made it first: then use theirs
    except FileExistsError:
        pass
    finally:
        staging.unlink()
    return path.read_bytes()
