"""A serving process's view of its index's reader events: the log and the signals kept from it.

Events are appended to the log, and the signals catch up with the log (``Signals.catch_up``),
never with the call's own events alone: several server processes share one log, and each
process's signals then count every process's events, in the log's order. When events were
deleted (``forget``, retention), the signals are recomputed from the log: at once in the
process that forgot a reader, in a background thread elsewhere (a million events take about
14 s on 2 cores; requests meanwhile use the signals as they were, catching up), and every process
drops a forgotten reader's history at its next read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from recommender.errors import NotFoundError
from recommender.events.features import Context
from recommender.events.log import EventLog
from recommender.events.ranker import Ranker, latest_ranker
from recommender.events.records import Event
from recommender.events.rerank import reordered_response, rerank_depth, reranked
from recommender.events.signals import Signals, SignalSettings
from recommender.ranking import Filters, RankingOptions
from recommender.requests import candidates
from recommender.requests.explain import RelatedResponse, build_response
from recommender.requests.queries import Query
from recommender.rowspace.space import RowSpace
from recommender.storage.schema import int_id

RANKER_RECHECK_S = 5.0  # how soon a newly saved ranker serves


class ReaderEvents:
    """Record, forget and read the behaviour of an index's readers."""

    def __init__(self, index_dir: str | Path, settings: SignalSettings | None = None) -> None:
        self.index_dir = Path(index_dir)
        self.log = EventLog(index_dir)
        self._ranker: Ranker | None = None
        self._ranker_checked = -RANKER_RECHECK_S
        self.settings = settings or SignalSettings()
        self._signals: Signals | None = None  # built from the log on first use
        self._generation = 0
        self._forgotten_seen = 0
        self._rebuilding = False
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
        self._rebuild(self.log.generation)
        return count

    def reader_history(self, reader: str) -> list[int]:
        """A reader's recent reads (int ids, oldest first)."""
        with self.signals() as signals:
            return signals.history(self.log.reader_hash(reader))

    def read_ids(self, space: RowSpace, reader: str, then: Sequence[str] = ()) -> list[str]:
        """The ids of a reader's recent reads that ``space`` holds, oldest first, then
        ``then``; NotFoundError when that is nothing."""
        rows = space.rows_of(self.reader_history(reader))
        ids = [str(space.ids[row]) for row in rows.tolist() if row >= 0] + list(then)
        if not ids:
            raise NotFoundError("no reads recorded for this reader, and no history_ids")
        return ids

    @contextmanager
    def signals(self) -> Iterator[Signals]:
        """The signals, caught up with the log, held still while the block reads them."""
        with self._lock:
            if self._signals is None:
                self._forgotten_seen = self.log.last_forgotten()
                self._generation = self.log.generation
                self._signals = Signals.replay(self.log.events(), self.settings)
            generation = self.log.generation
            if generation != self._generation and not self._rebuilding:
                self._rebuilding = True
                threading.Thread(target=self._rebuild, args=(generation,), daemon=True,
                                 name="signals-rebuild").start()  # fmt: skip
            self._signals.catch_up(self.log)
            self._forget_histories(self._signals)
            yield self._signals

    def _forget_histories(self, signals: Signals) -> None:
        for number, reader in self.log.forgotten_after(self._forgotten_seen):
            signals.histories.pop(reader, None)
            self._forgotten_seen = number

    def _rebuild(self, generation: int) -> None:
        """Recompute the signals from the log and put them in place of the current ones."""
        try:
            forgotten = self.log.last_forgotten()
            fresh = Signals.replay(self.log.events(), self.settings)
            with self._lock:
                fresh.catch_up(self.log)
                for _, reader in self.log.forgotten_after(forgotten):  # forgotten meanwhile
                    fresh.histories.pop(reader, None)
                self._signals, self._generation = fresh, generation
        finally:
            self._rebuilding = False

    def ranker(self) -> Ranker | None:
        """The newest saved ranker (looked for at most every ``RANKER_RECHECK_S``)."""
        now = time.monotonic()
        if now - self._ranker_checked > RANKER_RECHECK_S:
            found = latest_ranker(self.index_dir)
            self._ranker, self._ranker_checked = (found[1] if found else None), now
        return self._ranker

    def recommend(
        self,
        ranker: Ranker,
        space: RowSpace,
        query: Query,
        history_ids: Sequence[str],
        k: int,
        filters: Filters,
        options: RankingOptions,
    ) -> RelatedResponse:
        """A reader's list: the content ranking's head re-ordered by ``ranker`` with the
        signals of this moment (``rerank``)."""
        found, ranked = candidates.rank_candidates(space, query, rerank_depth(k), filters, options)
        if not found:
            return RelatedResponse([])
        context = Context(time.time(), None, tuple(int_id(i) for i in history_ids))
        with self.signals() as signals:
            ranked = reranked(ranker, space, signals, context, found.keys, ranked, k)
        return build_response(space, query, found, ranked)

    def reorder(
        self, ranker: Ranker, space: RowSpace, article_id: str, response: RelatedResponse, k: int
    ) -> RelatedResponse:
        """A stored list's answer under ``article_id`` re-ordered by ``ranker``."""
        context = Context(time.time(), int_id(article_id))
        with self.signals() as signals:
            return reordered_response(ranker, space, signals, context, response, k)

    def counts(self) -> dict[str, int]:
        """Events stored, by kind."""
        return self.log.counts()

    def close(self) -> None:
        self.log.close()
