"""Stored lists kept fresh as news arrives: which lists a write can change, and recomputing them.

A write (upsert or delete) can change article A's default list in four ways, and
``affected`` finds each with the engine's own candidate search and ranking function:

- A's list holds a changed or deleted article, or a near-duplicate of one (folded counts);
- an upserted article B now ranks above A's last kept result: B's candidates (``gather`` with
  B as the query: the articles B is related to, in its time windows too) are scored as A
  would score B (relevance is symmetric; recency counts from A's date) and compared with the
  score of the last result A keeps (any score enters a list that is not full);
- B is A's story in another language (dense cosine above the same-story threshold);
- A is B, whose own list is new.

Marked lists are dropped from lookups at once (those requests rank live, which gives the same
answer) and recomputed by a background thread; ``wait_fresh`` waits for it. Where candidate
search is exhaustive (small indexes, or each side fetching every article) the maintained lists
equal a full recompute exactly (``tests/test_lists.py``); on a large index B can also push an
article out of A's candidate pool without entering A's list, which this does not follow.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from recommender.lists import jsonwire
from recommender.lists.stored import StoredList, StoredLists, compute, snapshot_field
from recommender.ranking import Filters, calibrated, recency_factor, relevance
from recommender.requests import candidates, queries
from recommender.rowspace.space import RowSpace

NEAR_FETCH = 50  # neighbours searched for a changed article's near-duplicates
_NO_FILTERS = Filters()
_log = logging.getLogger("recommender.lists")


class ListTable:
    """A snapshot's stored lists plus the ones recomputed since; ``get`` is the lookup."""

    def __init__(
        self, stored: StoredLists | None, space: RowSpace | None, snapshot_name: str
    ) -> None:
        self.stored = stored if space is not None else None
        self.depth = self.stored.depth if self.stored is not None else 0
        self.snapshot_field = snapshot_field(snapshot_name)
        self.json_tail = jsonwire.snapshot_tail(snapshot_name)
        # the snapshot's rows: its plain dict (``word_rows``, never mutated), not the layered
        # ``row_of``, since every lookup reads it
        self._base_row: Mapping[int, int] = space.word_rows if space is not None else {}
        self._base_keys = space.int_ids[: space.n_main] if space is not None else np.zeros(0)
        self._entries: dict[int, StoredList] = {}  # recomputed since the snapshot
        self._held_by: dict[int, set[int]] = {}  # story -> recomputed lists that hold it
        self._dirty: dict[int, int] = {}  # key -> mark: rank live until recomputed
        self._removed: set[int] = set()
        self._marks = 0
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.recomputed = 0

    @classmethod
    def none(cls) -> ListTable:
        """A table with no lists (before a snapshot is loaded)."""
        return cls(None, None, "")

    @property
    def enabled(self) -> bool:
        """True when the snapshot has stored lists."""
        return self.stored is not None

    def get(self, key: int) -> StoredList | None:
        """The fresh stored list of an article, or None (rank it live)."""
        return None if key in self._dirty else self._current(key)

    def encoded(self, key: int, k: int) -> bytes | None:
        """The serialised answer of ``get(key)`` for ``k`` results, or None (rank it live)."""
        found, stored = self._fresh(key), self.stored
        if isinstance(found, StoredList):
            return found.encoded(k, self.snapshot_field)
        if found is None or stored is None:
            return None
        return stored.encoded(found, k, self.snapshot_field)

    def json(self, key: int, k: int) -> bytes | None:
        """``encoded``'s answer written as JSON, from the lists' JSON pieces; None: rank it
        live, or the snapshot has no JSON pieces (write ``encoded`` as JSON then)."""
        found, stored = self._fresh(key), self.stored
        if isinstance(found, StoredList):
            return found.json(k, self.json_tail)
        if found is None or stored is None:
            return None
        return stored.json(found, k, self.json_tail)

    def _fresh(self, key: int) -> StoredList | int | None:
        """Where ``get(key)``'s list is: recomputed since the snapshot (the list), the
        snapshot's (its row), or nowhere fresh (None: rank it live)."""
        if key in self._dirty or self.stored is None:
            return None
        entry = self._entries.get(key)
        if entry is not None:
            return entry
        return None if key in self._removed else self._base_row.get(key)

    def _current(self, key: int) -> StoredList | None:
        """The list as last computed, marked or not."""
        entry = self._entries.get(key)
        if entry is not None or self.stored is None or key in self._removed:
            return entry
        row = self._base_row.get(key)
        return self.stored.entry(row) if row is not None else None

    def info(self) -> dict[str, int]:
        """Depth, lists waiting to be recomputed, and lists recomputed since the snapshot."""
        return {"depth": self.depth, "pending": len(self._dirty), "recomputed": self.recomputed}

    # -- which lists a write changes -----------------------------------------------------

    def affected(
        self, old: RowSpace, new: RowSpace, upserted: Sequence[int], deleted: Sequence[int]
    ) -> set[int]:
        """Articles whose lists the write from ``old`` to ``new`` may change (module doc)."""
        if not self.enabled:
            return set()
        changed = {*upserted, *deleted}
        touched = set(changed)  # a list holding one of these is stale
        owners = {key for key in upserted if key in new.row_of}
        for key in changed:
            if key in old.row_of:
                touched |= _near_duplicates(old, key)
        for key in owners.copy():
            reverse, near = self._reverse(new, key)
            owners |= reverse
            touched |= near
        owners |= self._holders(touched)
        return owners - set(deleted)

    def _reverse(self, space: RowSpace, key: int) -> tuple[set[int], set[int]]:
        """(lists B may enter, B's near-duplicates) for an upserted article B = ``key``."""
        query = queries.article_query(space, [space.ids[space.row_of[key]]], [])
        defaults = space.options  # what the stored lists were ranked with
        fetch = candidates.fetch_size(self.depth, defaults)
        found = candidates.gather(
            space, query, fetch, _NO_FILTERS, half_life_days=defaults.recency_half_life_days
        )
        pool = found.pool
        dense = calibrated(pool, defaults, query.lang)
        score = relevance(dense, pool.lexical, defaults.dense_weight)
        if defaults.recency_half_life_days is not None:
            # as each candidate A would score B: recency counts from A's date
            mine = np.full(len(pool), np.nan if query.reference_ts is None else query.reference_ts)
            score = score * recency_factor(mine, pool.published_ts, defaults.recency_half_life_days)
        reverse = set()
        for i, owner in enumerate(found.keys):
            lang = pool.langs[i]  # A's: B is A's story in another language
            other_story = (
                bool(lang and query.lang and lang != query.lang)
                and dense[i] >= defaults.same_story_threshold
            )
            if other_story or score[i] >= self._last_score(owner):
                reverse.add(owner)
        near = defaults.dedup_threshold
        duplicates = {k for k, d in zip(found.keys, pool.dense, strict=True) if near and d >= near}
        return reverse, duplicates

    def _last_score(self, key: int) -> float:
        """The score a newcomer must reach to enter a list (-inf: the list is not full)."""
        # read the score arrays, not a whole entry: this runs for every candidate of a write
        scores: np.ndarray | None = None
        if key not in self._dirty:
            entry = self._entries.get(key)
            if entry is not None:
                scores = entry.scores
            elif self.stored is not None and key not in self._removed:
                row = self._base_row.get(key)
                if row is not None:
                    scores = self.stored.scores[row, : int((self.stored.keys[row] >= 0).sum())]
        if scores is None or len(scores) < self.depth:
            return -np.inf
        return float(scores[-1]) * (1.0 - 1e-5)  # stored as float32

    def _holders(self, keys: set[int]) -> set[int]:
        """Articles whose current list (results or other languages) holds one of ``keys``."""
        if not keys or self.stored is None:
            return set()
        wanted = np.fromiter(keys, dtype=np.int64, count=len(keys))
        rows = self.stored.holders(wanted)  # the reverse index: no scan of every list
        entries = self._entries
        holders = {key for key in self._base_keys[rows].tolist() if key not in entries}
        for key in keys:
            holders |= self._held_by.get(key, set())
        return holders

    def _install(self, owner: int, entry: StoredList | None) -> None:
        """Make ``entry`` the owner's recomputed list (None: drop it), keeping ``_held_by``."""
        old = self._entries.pop(owner, None)
        if old is not None:
            for key in [*old.keys.tolist(), *old.other.tolist()]:
                held = self._held_by.get(key)
                if held is not None:
                    held.discard(owner)
                    if not held:
                        del self._held_by[key]
        if entry is not None:
            self._entries[owner] = entry
            for key in [*entry.keys.tolist(), *entry.other.tolist()]:
                self._held_by.setdefault(key, set()).add(owner)

    def mark(
        self, affected: set[int], deleted: Sequence[int], then: Callable[[], None] = lambda: None
    ) -> None:
        """Drop the affected lists from lookups until recomputed, forget deleted articles',
        then call ``then`` (the writer publishes its new row space there, in the same step)."""
        with self._changed:
            then()
            for key in deleted:
                self._removed.add(key)
                self._install(key, None)
                self._dirty.pop(key, None)
            for key in affected:
                self._marks += 1
                self._dirty[key] = self._marks
            self._changed.notify_all()

    # -- recomputing -------------------------------------------------------------------------

    def refresh_one(self, space_of: Callable[[], RowSpace]) -> bool:
        """Recompute one marked list on the current space; False when none is marked."""
        with self._changed:
            if not self._dirty:
                return False
            key, mark = next(iter(self._dirty.items()))
        space = space_of()
        entry = compute(space, key, self.depth) if key in space.row_of else None
        previous = self._current(key)
        if entry is not None and previous is not None and previous.same_links(entry):
            entry = dataclasses.replace(entry, updated=previous.updated)  # for ``precompute``
        with self._changed:
            if entry is not None and _holds_removed(entry, space, space_of()):
                # computed on a space that a later write replaced, and holding a story that
                # write removed: the write could not know this list held it (it was not
                # installed yet), so it stays marked and is computed again
                return True
            if self._dirty.get(key) == mark:  # not marked again while computing
                del self._dirty[key]
                if entry is not None:
                    self._install(key, entry)
                    self.recomputed += 1
                self._changed.notify_all()
        return True

    def start(self, space_of: Callable[[], RowSpace]) -> None:
        """Recompute marked lists in a background thread until ``stop``."""

        def run() -> None:
            while not self._stop.is_set():
                try:
                    if self.refresh_one(space_of):
                        continue
                except Exception:  # keep the thread; the list stays marked (ranked live)
                    _log.exception("could not recompute a related list")
                    self._stop.wait(1.0)
                with self._changed:
                    if not self._dirty and not self._stop.is_set():
                        self._changed.wait(1.0)

        self._thread = threading.Thread(target=run, name="list-refresher", daemon=True)
        self._thread.start()

    def wait_fresh(self, timeout: float = 60.0) -> bool:
        """Wait until no list is marked; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._dirty, timeout)

    def stop(self, wait: float = 0.0) -> None:
        """Stop the background thread (waiting up to ``wait`` seconds for it to finish the
        list it is computing)."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None and wait:
            self._thread.join(wait)


def _near_duplicates(space: RowSpace, key: int) -> set[int]:
    """Articles near-identical to ``key`` (above the dedup threshold), itself included."""
    threshold = space.options.dedup_threshold
    vector = space.vectors.vector(key)
    if threshold is None or vector is None:
        return set()
    found = space.vectors.search(vector[None, :], NEAR_FETCH)
    return {int(i) for i, s in zip(found.ids[0], found.scores[0], strict=True) if s >= threshold}


def _holds_removed(entry: StoredList, computed_on: RowSpace, current: RowSpace) -> bool:
    """True when ``entry`` (computed on ``computed_on``) lists a story ``current`` lacks."""
    if current is computed_on:
        return False
    row_of = current.row_of
    return any(key not in row_of for key in [*entry.keys.tolist(), *entry.other.tolist()])
