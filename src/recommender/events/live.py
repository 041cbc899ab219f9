"""A serving process's view of its index's reader events: the log and the signals kept from it.

Events are appended to the log, and the signals catch up with the log (``Signals.catch_up``),
never with the call's own events alone: several server processes share one log, and each
process's signals then count every process's events, in the log's order. When events were
deleted (``forget``, retention), the signals are recomputed from the log.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from recommender.events.log import EventLog
from recommender.events.records import Event
from recommender.events.signals import Signals, SignalSettings


class ReaderEvents:
    """Record, forget and read the behaviour of an index's readers."""

    def __init__(self, index_dir: str | Path, settings: SignalSettings | None = None) -> None:
        self.log = EventLog(index_dir)
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

    def counts(self) -> dict[str, int]:
        """Events stored, by kind."""
        return self.log.counts()

    def close(self) -> None:
        self.log.close()
