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

import contextlib
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
    in worker processes. Lists stream to the files as they come, in row order: memory holds
    a chunk of them, not the archive's (a million lists are ~25 GB as Python objects)."""
    with contextlib.ExitStack() as opened:
        snapshot = open_snapshot(directory, verify=False)
        opened.callback(snapshot.close)
        space = RowSpace.from_snapshot(snapshot)
        plan = _changed_plan(space, depth, carried, opened) if carried is not None else None
        if plan is None:
            previous = _previous_lists(previous_dir)
            keys = space.int_ids[: space.n_main]
            plan = list(range(space.n_main)), lambda row: previous(int(keys[row]))
        rows, old_list = plan
        computed = _compute(space, directory, depth, rows, progress, runner)
        entries = _merged(space.n_main, rows, computed, old_list)
        width = len(set(space.langs[: space.n_main].tolist()))  # one story per language
        files = save(directory, entries, space.int_ids[: space.n_main], depth, width)
        progress(space.n_main - len(rows))
        return WrittenLists(files, len(rows), space.n_main - len(rows))


def _changed_plan(
    space: RowSpace, depth: int, carried: Carried, opened: contextlib.ExitStack
) -> tuple[list[int], Callable[[int], StoredList | None]] | None:
    """For a snapshot ``carried`` on an earlier one: the rows whose lists its changes touch
    (to compute), and each row's list in the earlier one; None when the earlier one has no
    lists this deep (compute every list)."""
    previous = open_snapshot(carried.path, verify=False)
    opened.callback(previous.close)
    old = RowSpace.from_snapshot(previous)
    stored = StoredLists.load(carried.path, old.word_rows)
    if stored is None or stored.depth != depth:
        return None
    table = ListTable(stored, old, previous.manifest.name)
    touched = table.affected(old, space, sorted(carried.upserted), sorted(carried.deleted))
    keys = space.int_ids[: space.n_main].tolist()
    rows = [r for r, key in enumerate(keys) if key in touched or key not in old.word_rows]

    def old_list(row: int) -> StoredList | None:
        old_row = old.word_rows.get(keys[row])
        return stored.entry(old_row) if old_row is not None else None

    return rows, old_list


def _merged(
    n: int,
    rows: Sequence[int],
    computed: Iterator[StoredList],
    old_list: Callable[[int], StoredList | None],
) -> Iterator[StoredList]:
    """Every row's list in row order: computed for ``rows`` (ascending, ``computed`` in
    that order), else the earlier list. A computed list whose links equal the earlier one's
    keeps its time, so an export ``--since`` lists only what changed."""
    wanted = iter(rows)
    next_row = next(wanted, None)
    for row in range(n):
        old = old_list(row)
        if row != next_row:
            assert old is not None  # rows with no earlier list are computed
            yield old
            continue
        entry = next(computed)
        if old is not None and old.same_links(entry):
            entry = dataclasses.replace(entry, updated=old.updated)
        yield entry
        next_row = next(wanted, None)


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


def _compute(
    space: RowSpace,
    directory: Path,
    depth: int,
    rows: Sequence[int],
    progress: Callable[[int], None],
    runner: RowRunner | None = None,
) -> Iterator[StoredList]:
    """The lists of ``rows``, in that order, as they are computed: here for a few, else by
    ``runner`` or in worker processes (spawned, not forked: OpenMP and torch threads do not
    survive a fork; each loads the snapshot from ``directory``)."""
    if len(rows) < PARALLEL_FROM:
        for chunk in _chunks(rows):
            yield from (compute(space, int(space.int_ids[r]), depth) for r in chunk)
            progress(len(chunk))
        return
    if runner is not None:
        for computed in runner(directory, depth, list(_chunks(rows))):
            yield from computed
            progress(len(computed))
        return
    # an executor, not a Pool: a worker that cannot start breaks it with an error
    # (a Pool starts a replacement forever)
    pool = ProcessPoolExecutor(
        max(1, multiprocessing.cpu_count()),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_start,
        initargs=(str(directory), depth),
    )
    try:
        for computed in pool.map(_worker_rows, _chunks(rows)):
            yield from computed
            progress(len(computed))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _chunks(rows: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(rows), _CHUNK):
        yield list(rows[start : start + _CHUNK])


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
