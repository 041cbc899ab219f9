"""Every stored list of a snapshot being built, computed in worker processes.

``write_for_snapshot`` is what ``recommender index`` calls between building the FAISS index and
publishing: it opens the snapshot in its building directory, computes each article's list with
the engine's own ranking (``lists.compute``), keeps the ``updated`` time of lists whose links
did not change since the serving snapshot, and writes them (``lists.save``).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from recommender.lists.stored import LIST_DEPTH, StoredList, StoredLists, compute, save
from recommender.rowspace.space import RowSpace
from recommender.runtime import set_threads
from recommender.storage.snapshot import open_snapshot

# Below this many articles the lists are computed in the indexing process; above it, in one
# worker process per core (each loads the snapshot being built).
PARALLEL_FROM = 4000
_CHUNK = 256


def write_for_snapshot(
    directory: Path,
    depth: int = LIST_DEPTH,
    *,
    previous_dir: Path | None = None,
    progress: Callable[[int], None] = lambda done: None,
) -> list[Path]:
    """Compute and write the lists of the snapshot being built in ``directory``; lists that
    did not change since the snapshot in ``previous_dir`` keep their time."""
    snapshot = open_snapshot(directory, verify=False)
    try:
        space = RowSpace.from_snapshot(snapshot)
        entries = build_all(
            space, directory, depth, previous=_previous_lists(previous_dir), progress=progress
        )
        return save(directory, entries, space.int_ids[: space.n_main], depth)
    finally:
        snapshot.close()


def _previous_lists(directory: Path | None) -> Callable[[int], StoredList | None]:
    if directory is None:
        return lambda key: None
    labels = np.load(directory / "labels.npy")
    position = {int(key): row for row, key in enumerate(labels)}
    stored = StoredLists.load(directory, position)
    if stored is None:
        return lambda key: None

    def previous(key: int) -> StoredList | None:
        row = position.get(key)
        return stored.entry(row) if row is not None and row < len(stored) else None

    return previous


def build_all(
    space: RowSpace,
    directory: Path,
    depth: int = LIST_DEPTH,
    *,
    previous: Callable[[int], StoredList | None] = lambda key: None,
    progress: Callable[[int], None] = lambda done: None,
) -> list[StoredList]:
    """Every snapshot row's list, computed on ``space`` (the snapshot in ``directory``).

    Large snapshots are split over one worker process per core; each loads the snapshot from
    ``directory`` (spawned, not forked: OpenMP and torch threads do not survive a fork). A
    list whose answer equals ``previous``'s keeps its time, so an export ``--since`` lists only
    what changed.
    """
    rows = list(range(space.n_main))
    if len(rows) < PARALLEL_FROM:
        computed: Iterator[list[StoredList]] = (
            [compute(space, int(space.int_ids[r]), depth) for r in chunk] for chunk in _chunks(rows)
        )
        entries = _collect(computed, progress)
    else:
        workers = max(1, multiprocessing.cpu_count())
        # an executor, not a Pool: a worker that cannot start breaks it with an error
        # (a Pool starts a replacement forever)
        with ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_start,
            initargs=(str(directory), depth),
        ) as pool:
            entries = _collect(pool.map(_worker_rows, _chunks(rows)), progress)
    for row, entry in enumerate(entries):
        old = previous(int(space.int_ids[row]))
        if old is not None and old.same_links(entry):
            entries[row] = dataclasses.replace(entry, updated=old.updated)
    return entries


def _chunks(rows: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(rows), _CHUNK):
        yield rows[start : start + _CHUNK]


def _collect(
    chunks: Iterable[list[StoredList]], progress: Callable[[int], None]
) -> list[StoredList]:
    entries: list[StoredList] = []
    for chunk in chunks:
        entries += chunk
        progress(len(chunk))
    return entries


_worker_state: dict[str, Any] = {}


def _worker_start(directory: str, depth: int) -> None:
    set_threads(1)  # one process per core
    snapshot = open_snapshot(Path(directory), verify=False)
    _worker_state["space"] = RowSpace.from_snapshot(snapshot)
    _worker_state["depth"] = depth


def _worker_rows(rows: list[int]) -> list[StoredList]:
    space: RowSpace = _worker_state["space"]
    depth: int = _worker_state["depth"]
    return [compute(space, int(space.int_ids[r]), depth) for r in rows]
