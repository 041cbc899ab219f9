"""The stored lists' files in a snapshot directory: written by ``save``, mapped by
``StoredLists.load`` (the layout is in ``stored``'s docstring)."""

from __future__ import annotations

import mmap
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import numpy as np

FILES = ("keys", "scores", "other", "spec_offsets", "card_offsets", "updated")
HOLDER_FILES = ("held_keys", "held_rows")  # absent from snapshots written before them
JSON_FILES = ("spec_json_offsets", "card_json_offsets")  # absent before the JSON pieces
SPECS_FILE = "lists.specs.bin"
CARDS_FILE = "lists.cards.bin"
SPECS_JSON_FILE = "lists.specs.json.bin"
CARDS_JSON_FILE = "lists.cards.json.bin"


class ListEntry(Protocol):
    """What ``save`` reads of a list (``stored.StoredList``; a protocol, as ``stored``
    imports this module)."""

    @property
    def keys(self) -> np.ndarray: ...
    @property
    def scores(self) -> np.ndarray: ...
    @property
    def other(self) -> np.ndarray: ...
    @property
    def cards(self) -> tuple[bytes, ...]: ...
    @property
    def specs(self) -> tuple[bytes, ...]: ...
    @property
    def updated(self) -> float: ...
    @property
    def card_json(self) -> tuple[tuple[bytes, bytes], ...]: ...
    @property
    def spec_json(self) -> tuple[tuple[bytes, bytes], ...]: ...


def mapped_bytes(path: Path) -> bytes | mmap.mmap:
    """A file mapped read-only (slices are bytes); a zero-length file cannot be mapped."""
    with path.open("rb") as handle:
        if not path.stat().st_size:
            return b""
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)


def save(
    directory: Path, entries: Iterable[ListEntry], row_keys: np.ndarray, depth: int, width: int
) -> list[Path]:
    """Write the lists of every snapshot row (in row order, one per ``row_keys``, the rows'
    int ids) as ``StoredLists`` reads them: each story's card once, in its row. ``width``
    is the most other-language stories a list may hold (the snapshot's languages); the lists
    are written as they come, so ``entries`` may be a stream."""
    n = len(row_keys)
    slots = depth + width
    keys = np.full((n, depth), -1, dtype=np.int64)
    scores = np.zeros((n, depth), dtype=np.float32)
    other = np.full((n, width), -1, dtype=np.int64)
    spec_offsets = np.zeros((n, slots + 1), dtype=np.int64)
    # two pieces per slot (score, rest): an item's pieces are [2s, 2s+1) and [2s+1, 2s+2)
    spec_json_offsets = np.zeros((n, 2 * slots + 1), dtype=np.int64)
    updated = np.zeros(n, dtype=np.float64)
    cards: dict[int, tuple[bytes, tuple[bytes, bytes]]] = {}
    position = json_position = 0
    with (directory / SPECS_FILE).open("wb") as specs, \
            (directory / SPECS_JSON_FILE).open("wb") as specs_json:  # fmt: skip
        written = 0
        for row, entry in enumerate(entries):
            count, others = len(entry.keys), len(entry.other)
            if row >= n:
                raise ValueError(f"more lists than the {n} rows")
            if others > width:
                raise ValueError(f"list {row}: {others} other-language stories, width {width}")
            keys[row, :count] = entry.keys
            scores[row, :count] = entry.scores
            other[row, :others] = entry.other
            filled = [*range(count), *range(depth, depth + others)]
            by_slot = dict(zip(filled, zip(entry.specs, entry.spec_json, strict=True),
                               strict=True))  # fmt: skip
            spec_offsets[row, 0] = position
            spec_json_offsets[row, 0] = json_position
            for slot in range(slots):  # an empty slot ends where the one before does
                found = by_slot.get(slot)
                pieces: tuple[bytes, ...] = (b"", b"")
                if found is not None:
                    spec, pieces = found
                    specs.write(spec)
                    position += len(spec)
                spec_offsets[row, slot + 1] = position
                for half, piece in enumerate(pieces):
                    specs_json.write(piece)
                    json_position += len(piece)
                    spec_json_offsets[row, 2 * slot + half + 1] = json_position
            for key, card, card_json in zip([*entry.keys.tolist(), *entry.other.tolist()],
                                            entry.cards, entry.card_json, strict=True):  # fmt: skip
                cards.setdefault(key, (card, card_json))
            updated[row] = entry.updated
            written += 1
        if written != n:
            raise ValueError(f"{written} lists for {n} rows")
    card_offsets = np.zeros(n + 1, dtype=np.int64)
    card_json_offsets = np.zeros(2 * n + 1, dtype=np.int64)
    with (directory / CARDS_FILE).open("wb") as out, \
            (directory / CARDS_JSON_FILE).open("wb") as out_json:  # fmt: skip
        for row, key in enumerate(row_keys.tolist()):
            card, (head, middle) = cards.get(key, (b"", (b"", b"")))  # in no list: no card
            out.write(card)
            card_offsets[row + 1] = card_offsets[row] + len(card)
            out_json.write(head + middle)
            card_json_offsets[2 * row + 1] = card_json_offsets[2 * row] + len(head)
            card_json_offsets[2 * row + 2] = card_json_offsets[2 * row + 1] + len(middle)
    held_keys, held_rows = holder_index(keys, other)
    arrays: dict[str, np.ndarray] = {
        "keys": keys, "scores": scores, "other": other, "spec_offsets": spec_offsets,
        "card_offsets": card_offsets, "updated": updated, "held_keys": held_keys,
        "held_rows": held_rows, "spec_json_offsets": spec_json_offsets,
        "card_json_offsets": card_json_offsets,
    }  # fmt: skip
    paths = []
    for name in (*FILES, *HOLDER_FILES, *JSON_FILES):
        path = directory / f"lists.{name}.npy"
        np.save(path, arrays[name])
        paths.append(path)
    blobs = (SPECS_FILE, CARDS_FILE, SPECS_JSON_FILE, CARDS_JSON_FILE)
    return [*paths, *(directory / name for name in blobs)]


def holder_index(keys: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(every story held, the row holding it), sorted by story then row: ``holders``."""
    n = keys.shape[0]
    flat = np.concatenate([keys.reshape(-1), other.reshape(-1)])
    rows = np.concatenate([
        np.repeat(np.arange(n, dtype=np.int32), keys.shape[1]),
        np.repeat(np.arange(n, dtype=np.int32), other.shape[1]),
    ])  # fmt: skip
    present = flat >= 0
    flat, rows = flat[present], rows[present]
    order = np.lexsort((rows, flat))
    return flat[order], rows[order]
