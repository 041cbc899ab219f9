"""A bounded cache of answers, emptied whenever what they were computed from changes.

A website asks for the links under an article on every page view of it, and page views
concentrate on a few stories, so most "related to article X" requests repeat a question
already answered. The engine keeps the answers for the current index generation; any change
(an upsert, a delete, a newly loaded snapshot) starts a new generation and empties the cache,
so an answer is never older than the index it came from.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

Value = TypeVar("Value")


class ResultCache(Generic[Value]):
    """Least-recently-used answers by key, valid for one generation of the index."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self._entries: OrderedDict[Hashable, Value] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0
        self.hits = 0
        self.misses = 0

    @property
    def generation(self) -> int:
        """Read before computing an answer; pass it to ``put``."""
        return self._generation

    def get(self, key: Hashable) -> Value | None:
        """The cached answer for ``key`` in the current generation, or None."""
        if not self.capacity:
            return None
        with self._lock:
            value = self._entries.get((self._generation, key))
            if value is None:
                self.misses += 1
                return None
            self._entries.move_to_end((self._generation, key))
            self.hits += 1
            return value

    def put(self, key: Hashable, value: Value, generation: int) -> None:
        """Keep an answer computed during ``generation`` (dropped if the index changed since)."""
        if not self.capacity:
            return
        with self._lock:
            if generation != self._generation:
                return
            self._entries[(generation, key)] = value
            self._entries.move_to_end((generation, key))
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def invalidate(self) -> None:
        """The index changed: start a new generation with an empty cache."""
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def info(self) -> dict[str, int]:
        """Capacity, entries, hits and misses (since start)."""
        with self._lock:
            return {
                "capacity": self.capacity,
                "entries": len(self._entries),
                "hits": self.hits,
                "misses": self.misses,
            }
