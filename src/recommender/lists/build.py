"""Every stored list of a snapshot being built: carried over, or computed in worker processes.

``write_for_snapshot`` is what ``recommender index`` calls between building the FAISS index and
publishing: it opens the snapshot in its building directory, computes each article's list with
the engine's own ranking (``lists.compute``), keeps the ``updated`` time of lists whose links
did not change since the serving snapshot, and writes them (``lists.save``).

A snapshot built on the serving one (``storage.carry``) recomputes only the lists its changes
can touch, found as a live write finds them (``freshness.ListTable.affected``: lists holding
a changed or deleted story or a near-duplicate of one, lists a new or changed story now ranks
into, other-language copies, the changed stories' own); every other list is the serving
snapshot's, carried over. Where candidate search is exhaustive that equals a full recompute,
bytes included (``tests/test_carry.py``).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recommender.lists.files import save
from recommender.lists.freshness import ListTable
from recommender.lists.stored import LIST_DEPTH, StoredList, StoredLists, compute
from recommender.rowspace.space import RowSpace
from recommender.runtime import set_threads
from recommender.storage.carry import Carried
from recommender.storage.snapshot import open_snapshot

# Below this many lists they are computed in the indexing process; from it on, in one worker
# process per core (each loads the snapshot being built). A worker starts in ~4 s on 2 cores
# (imports 2.5 s, a 10k-article snapshot 1.5 s): the time of ~100 lists, so a batch that
# recomputes a few hundred gains from the second core.
PARALLEL_FROM = 500
_CHUNK = 256

# Computes chunks of rows of the snapshot being built elsewhere (``batch.raylists``):
# (snapshot directory, depth, chunks of rows) -> the chunks' lists, in order
RowRunner = Callable[[Path, int, list[list[int]]], Iterable[list[StoredList]]]


@dataclass(frozen=True)
class WrittenLists:
    """The files of a snapshot's lists, and how many lists were computed or carried over."""

    files: list[Path]
    computed: int
    carried: int


def write_for_snapshot(
    directory: Path,
    depth: int = LIST_DEPTH,
    *,
    previous_dir: Path | None = None,
    carried: Carried | None = None,
    progress: Callable[[int], None] = lambda done: None,
    runner: RowRunner | None = None,
) -> WrittenLists:
    """Compute and write the lists of the snapshot being built in ``directory``: only those
    its changes touch when it is ``carried`` on the serving snapshot (module doc), every one
    otherwise. Lists that did not change since the snapshot in ``previous_dir`` keep their
    time. From ``PARALLEL_FROM`` lists they are computed by ``runner`` when given (Ray), else
    in worker processes."""
    snapshot = open_snapshot(directory, verify=False)
    try:
        space = RowSpace.from_snapshot(snapshot)
        built = None
        if carried is not None:
            built = build_changed(
                space, directory, depth, carried, progress=progress, runner=runner
            )
        if built is None:
            previous = _previous_lists(previous_dir)
            entries = build_all(
                space, directory, depth, previous=previous, progress=progress, runner=runner
            )
            built = entries, len(entries)
        entries, computed = built
        files = save(directory, entries, space.int_ids[: space.n_main], depth)
        return WrittenLists(files, computed, len(entries) - computed)
    finally:
        snapshot.close()


def build_changed(
    space: RowSpace,
    directory: Path,
    depth: int,
    carried: Carried,
    *,
    progress: Callable[[int], None] = lambda done: None,
    runner: RowRunner | None = None,
) -> tuple[list[StoredList], int] | None:
    """Every row's list for a snapshot ``carried`` on an earlier one: the lists its changes
    touch computed, the others taken over; None when the earlier one has no lists this deep.
    Returns the lists and how many were computed."""
    previous = open_snapshot(carried.path, verify=False)
    try:
        old = RowSpace.from_snapshot(previous)
        stored = StoredLists.load(carried.path, old.word_rows)
        if stored is None or stored.depth != depth:
            return None
        table = ListTable(stored, old, previous.manifest.name)
        touched = table.affected(old, space, sorted(carried.upserted), sorted(carried.deleted))
        keys = space.int_ids[: space.n_main].tolist()
        rows = [r for r, key in enumerate(keys) if key in touched or key not in old.word_rows]
        lists = _compute(space, directory, depth, rows, progress, runner)
        computed = dict(zip(rows, lists, strict=True))
        entries = []
        for row, key in enumerate(keys):
            old_entry = stored.entry(old.word_rows[key]) if key in old.word_rows else None
            entry = computed.get(row)
            if entry is None:
                assert old_entry is not None  # rows absent from ``old`` are computed
                entry = old_entry
            elif old_entry is not None and old_entry.same_links(entry):
                entry = dataclasses.replace(entry, updated=old_entry.updated)
            entries.append(entry)
        progress(len(keys) - len(rows))
        return entries, len(rows)
    finally:
        previous.close()


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
    runner: RowRunner | None = None,
) -> list[StoredList]:
    """Every snapshot row's list, computed on ``space`` (the snapshot in ``directory``).

    Large snapshots are split over one worker process per core; each loads the snapshot from
    ``directory`` (spawned, not forked: OpenMP and torch threads do not survive a fork). A
    list whose answer equals ``previous``'s keeps its time, so an export ``--since`` lists only
    what changed.
    """
    entries = _compute(space, directory, depth, list(range(space.n_main)), progress, runner)
    for row, entry in enumerate(entries):
        old = previous(int(space.int_ids[row]))
        if old is not None and old.same_links(entry):
            entries[row] = dataclasses.replace(entry, updated=old.updated)
    return entries


def _compute(
    space: RowSpace,
    directory: Path,
    depth: int,
    rows: Sequence[int],
    progress: Callable[[int], None],
    runner: RowRunner | None = None,
) -> list[StoredList]:
    """The lists of ``rows``, in that order: here for a few, else by ``runner`` or in worker
    processes."""
    if len(rows) < PARALLEL_FROM:
        computed: Iterator[list[StoredList]] = (
            [compute(space, int(space.int_ids[r]), depth) for r in chunk] for chunk in _chunks(rows)
        )
        return _collect(computed, progress)
    if runner is not None:
        return _collect(runner(directory, depth, list(_chunks(rows))), progress)
    workers = max(1, multiprocessing.cpu_count())
    # an executor, not a Pool: a worker that cannot start breaks it with an error
    # (a Pool starts a replacement forever)
    with ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_start,
        initargs=(str(directory), depth),
    ) as pool:
        return _collect(pool.map(_worker_rows, _chunks(rows)), progress)


def _chunks(rows: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(rows), _CHUNK):
        yield list(rows[start : start + _CHUNK])


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
