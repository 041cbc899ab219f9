"""A serving process's view of its index's reader events: the log and the signals kept from it.

Events are appended to the log, and the signals catch up with the log (``Signals.catch_up``),
never with the call's own events alone: several server processes share one log, and each
process's signals then count every process's events, in the log's order. When events were
deleted (``forget``, retention), the signals are recomputed from the log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from recommender.events.features import Context
from recommender.events.log import EventLog
from recommender.events.ranker import Ranker, latest_ranker
from recommender.events.records import Event
from recommender.events.rerank import reranked
from recommender.events.signals import Signals, SignalSettings
from recommender.ranking import RankedList
from recommender.rowspace.space import RowSpace

RANKER_RECHECK_S = 5.0  # how soon a newly saved ranker serves


class ReaderEvents:
    """Record, forget and read the behaviour of an index's readers."""

    def __init__(self, index_dir: str | Path, settings: SignalSettings | None = None) -> None:
        self.index_dir = Path(index_dir)
        self.log = EventLog(index_dir)
        self._ranker: Ranker | None = None
        self._ranker_checked = -RANKER_RECHECK_S
        self.settings = settings or SignalSettings()
        self._signals = Signals(self.settings)
        self._generation = -1  # nothing counted yet: the first read replays the log
        self._lock = threading.Lock()

    def record(self, events: Sequence[Event]) -> int:
        """Store events durably; the signals count them before this returns."""
        count = self.log.append(events)
        with self.signals():
            pass
        return count

    def forget(self, reader: str) -> int:
        """Delete one reader's events and what they counted for (history, popularity)."""
        count = self.log.forget(reader)
        with self.signals():
            pass
        return count

    def reader_history(self, reader: str) -> list[int]:
        """A reader's recent reads (int ids, oldest first)."""
        with self.signals() as signals:
            return signals.history(self.log.reader_hash(reader))

    @contextmanager
    def signals(self) -> Iterator[Signals]:
        """The signals, caught up with the log, held still while the block reads them."""
        with self._lock:
            generation = self.log.generation
            if generation != self._generation:
                self._signals = Signals.replay(self.log.events(), self.settings)
                self._generation = generation
            else:
                self._signals.catch_up(self.log)
            yield self._signals

    def ranker(self) -> Ranker | None:
        """The newest saved ranker (looked for at most every ``RANKER_RECHECK_S``)."""
        now = time.monotonic()
        if now - self._ranker_checked > RANKER_RECHECK_S:
            found = latest_ranker(self.index_dir)
            self._ranker, self._ranker_checked = (found[1] if found else None), now
        return self._ranker

    def rerank(
        self,
        ranker: Ranker,
        space: RowSpace,
        history: Sequence[int],
        keys: list[int],
        ranked: RankedList,
        k: int,
    ) -> RankedList:
        """A content ranking re-ordered by ``ranker`` with the signals of this moment."""
        context = Context(time.time(), None, tuple(history))
        with self.signals() as signals:
            return reranked(ranker, space, signals, context, keys, ranked, k)

    def counts(self) -> dict[str, int]:
        """Events stored, by kind."""
        return self.log.counts()

    def close(self) -> None:
        self.log.close()
