"""Materialised "read also" lists: every article's default related list, computed ahead.

A news site asks for the same thing on every page view: the default list under the article
being read. It changes only when the index changes, so each snapshot stores every article's
default answer (``Related`` by id, default options, no filters) to ``LIST_DEPTH`` results,
already encoded as protobuf ``RelatedItem`` fields. A lookup for any ``k`` up to the depth
is then a slice of bytes: the first ``k`` results, the "same story in other languages" group
and the snapshot's name (``StoredList.encoded``). ``ranking.PREFIX_DEPTH`` makes a shorter
list a prefix of a longer one, so the slice equals what the live ranking returns.

On disk (memory-mapped, checksummed with the rest of the snapshot), one row per snapshot row
(the order of the FAISS main tier, ``RowSpace`` rows below ``n_main``)::

    lists.keys.npy     (n, depth) int64   result int ids, best first (-1: none)
    lists.scores.npy   (n, depth) float32 their final scores
    lists.other.npy    (n, width) int64   the other-language group's int ids (-1: none)
    lists.offsets.npy  (n, depth + 2) int64 byte offsets into the payload: start, the end of
                       each result (repeated past the last), the end of the other group
    lists.updated.npy  (n,) float64       when the list last changed (POSIX seconds)
    lists.payload.bin  the encoded results

``freshness.ListTable`` keeps them current as articles are upserted and deleted.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recommender import candidates, queries
from recommender.explain import RelatedResponse, build_response
from recommender.ranking import PREFIX_DEPTH, Filters, RankingOptions
from recommender.rowspace import RowSpace
from recommender.runtime import set_threads
from recommender.service import convert
from recommender.snapshot import open_snapshot
from recommender.store import int_id
from recommender.v1 import recommender_pb2 as pb

LIST_DEPTH = PREFIX_DEPTH
FILES = ("keys", "scores", "other", "offsets", "updated")
PAYLOAD_FILE = "lists.payload.bin"
# Below this many articles the lists are computed in the indexing process; above it, in one
# worker process per core (each loads the snapshot being built).
PARALLEL_FROM = 4000
_CHUNK = 256
_DEFAULT_OPTIONS = RankingOptions()
_NO_FILTERS = Filters()


@dataclass(frozen=True)
class StoredList:
    """One article's default related list, encoded for the wire."""

    keys: np.ndarray  # int64, results' int ids, best first
    scores: np.ndarray  # float32 final scores
    other: np.ndarray  # int64, the other-language group
    payload: bytes  # encoded results, then the encoded other-language group
    ends: np.ndarray  # int64: ends[i] is where result i ends in ``payload``
    updated: float

    def encoded(self, k: int, snapshot_field: bytes) -> bytes:
        """A serialised ``RelatedResponse`` with the first ``k`` results (k <= depth)."""
        count = len(self.keys)
        results_end = int(self.ends[min(k, count) - 1]) if count else 0
        other_start = int(self.ends[count - 1]) if count else 0
        return self.payload[:results_end] + self.payload[other_start:] + snapshot_field

    def response(self, k: int) -> RelatedResponse:
        """The same answer as domain objects (local callers: the CLI, batch jobs)."""
        message = pb.RelatedResponse.FromString(self.encoded(k, b""))
        return convert.response_from_pb(message)

    def same_links(self, other: StoredList) -> bool:
        """True when both list the same stories as a page shows them (ids, titles, links,
        dates, in order): scores drift with every rebuild of the lexical model, the links a
        site renders do not. A list keeps its ``updated`` time while this holds."""
        if self.keys.tolist() != other.keys.tolist() or self.other.tolist() != other.other.tolist():
            return False
        return _links(self.payload) == _links(other.payload)


def _links(payload: bytes) -> list[tuple[str, ...]]:
    message = pb.RelatedResponse.FromString(payload)
    return [
        (item.id, item.title, item.url, item.published_at, item.lang, item.source, item.section)
        for item in [*message.results, *message.other_languages]
    ]


def snapshot_field(name: str) -> bytes:
    """The encoded ``snapshot`` field appended to every answer from a snapshot."""
    encoded: bytes = pb.RelatedResponse(snapshot=name).SerializeToString()
    return encoded


def default_answer(space: RowSpace, key: int, depth: int) -> RelatedResponse:
    """What ``Related`` by id with default options and no filters returns for ``depth``."""
    query = queries.article_query(space, [space.ids[space.row_of[key]]], [])
    found, ranked = candidates.rank_candidates(space, query, depth, _NO_FILTERS, _DEFAULT_OPTIONS)
    if not found:
        return RelatedResponse([])
    return build_response(space, query, found, ranked)


def encode(response: RelatedResponse, updated: float) -> StoredList:
    """A response as a stored list: each result encoded once, as field 1 of the response."""
    parts = [
        pb.RelatedResponse(results=[convert.item_to_pb(item)]).SerializeToString()
        for item in response.results
    ]
    other = pb.RelatedResponse(
        other_languages=[convert.item_to_pb(item) for item in response.other_languages]
    ).SerializeToString()
    return StoredList(
        keys=np.array([_key(item.id) for item in response.results], dtype=np.int64),
        scores=np.array([item.score for item in response.results], dtype=np.float32),
        other=np.array([_key(item.id) for item in response.other_languages], dtype=np.int64),
        payload=b"".join(parts) + other,
        ends=np.cumsum([len(p) for p in parts], dtype=np.int64),
        updated=updated,
    )


def compute(space: RowSpace, key: int, depth: int = LIST_DEPTH) -> StoredList:
    """An article's stored list, computed on ``space`` now."""
    return encode(default_answer(space, key, depth), time.time())


def _key(article_id: str) -> int:
    return int_id(article_id)


# -- the stored arrays ----------------------------------------------------------------------


class StoredLists:
    """A snapshot's lists, memory-mapped; ``entry(row)`` reads one."""

    def __init__(self, arrays: dict[str, np.ndarray], payload: np.ndarray) -> None:
        self.keys = arrays["keys"]
        self.scores = arrays["scores"]
        self.other = arrays["other"]
        self.offsets = arrays["offsets"]
        self.updated = arrays["updated"]
        self.payload = payload
        self.depth = int(self.keys.shape[1])

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def entry(self, row: int) -> StoredList:
        """The stored list of a snapshot row."""
        keys = self.keys[row]
        count = int((keys >= 0).sum())
        offsets = self.offsets[row]
        start = int(offsets[0])
        other = self.other[row]
        return StoredList(
            keys=np.asarray(keys[:count]),
            scores=np.asarray(self.scores[row, :count]),
            other=np.asarray(other[other >= 0]),
            payload=self.payload[start : int(offsets[-1])].tobytes(),
            ends=np.asarray(offsets[1 : count + 1]) - start,
            updated=float(self.updated[row]),
        )

    def encoded(self, row: int, k: int, snapshot_field: bytes) -> bytes:
        """``entry(row).encoded(k, snapshot_field)`` without building the entry (the lookup
        of every page view: two slices of the mapped payload)."""
        offsets = self.offsets[row].tolist()
        payload = self.payload
        return (
            payload[offsets[0] : offsets[min(k, self.depth)]].tobytes()
            + payload[offsets[self.depth] : offsets[self.depth + 1]].tobytes()
            + snapshot_field
        )

    @classmethod
    def load(cls, directory: Path) -> StoredLists | None:
        """The lists of a snapshot directory (None when it was built without them)."""
        if not (directory / PAYLOAD_FILE).is_file():
            return None
        arrays = {name: np.load(directory / f"lists.{name}.npy", mmap_mode="r") for name in FILES}
        size = (directory / PAYLOAD_FILE).stat().st_size
        payload = (
            np.memmap(directory / PAYLOAD_FILE, dtype=np.uint8, mode="r")
            if size
            else np.zeros(0, dtype=np.uint8)
        )
        return cls(arrays, payload)


def save(directory: Path, entries: Sequence[StoredList], depth: int) -> list[Path]:
    """Write the lists of every snapshot row (in row order) as ``StoredLists`` reads them."""
    n = len(entries)
    width = max((len(e.other) for e in entries), default=0)
    keys = np.full((n, depth), -1, dtype=np.int64)
    scores = np.zeros((n, depth), dtype=np.float32)
    other = np.full((n, width), -1, dtype=np.int64)
    offsets = np.zeros((n, depth + 2), dtype=np.int64)
    updated = np.zeros(n, dtype=np.float64)
    position = 0
    with (directory / PAYLOAD_FILE).open("wb") as payload:
        for row, entry in enumerate(entries):
            count = len(entry.keys)
            keys[row, :count] = entry.keys
            scores[row, :count] = entry.scores
            other[row, : len(entry.other)] = entry.other
            ends = np.full(depth, int(entry.ends[-1]) if count else 0, dtype=np.int64)
            ends[:count] = entry.ends
            offsets[row, 0] = position
            offsets[row, 1 : depth + 1] = position + ends
            offsets[row, depth + 1] = position + len(entry.payload)
            updated[row] = entry.updated
            payload.write(entry.payload)
            position += len(entry.payload)
    arrays: dict[str, np.ndarray] = {
        "keys": keys,
        "scores": scores,
        "other": other,
        "offsets": offsets,
        "updated": updated,
    }
    paths = []
    for name in FILES:
        path = directory / f"lists.{name}.npy"
        np.save(path, arrays[name])
        paths.append(path)
    return [*paths, directory / PAYLOAD_FILE]


# -- building every list of a snapshot -------------------------------------------------------


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
        return save(directory, entries, depth)
    finally:
        snapshot.close()


def _previous_lists(directory: Path | None) -> Callable[[int], StoredList | None]:
    stored = StoredLists.load(directory) if directory is not None else None
    if stored is None or directory is None:
        return lambda key: None
    labels = np.load(directory / "labels.npy")
    position = {int(key): row for row, key in enumerate(labels)}

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
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, _worker_start, (str(directory), depth)) as pool:
            entries = _collect(pool.imap(_worker_rows, _chunks(rows)), progress)
    for row, entry in enumerate(entries):
        old = previous(int(space.int_ids[row]))
        if old is not None and old.same_links(entry):
            entries[row] = StoredList(
                entry.keys, entry.scores, entry.other, entry.payload, entry.ends, old.updated
            )
    return entries


def _chunks(rows: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(rows), _CHUNK):
        yield rows[start : start + _CHUNK]


def _collect(
    chunks: Iterator[list[StoredList]], progress: Callable[[int], None]
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
