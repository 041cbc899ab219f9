"""Materialised "read also" lists: every article's default related list, computed ahead.

A news site asks for the same thing on every page view: the default list under the article
being read. It changes only when the index changes, so each snapshot stores every article's
default answer (``Related`` by id, default options, no filters) to ``LIST_DEPTH`` results,
already encoded as protobuf ``RelatedItem`` halves. A lookup for any ``k`` up to the depth
joins slices of bytes: the first ``k`` results, the "same story in other languages" group
and the snapshot's name (``StoredLists.encoded``). ``ranking.PREFIX_DEPTH`` makes a shorter
list a prefix of a longer one, so the slice equals what the live ranking returns.

On disk (memory-mapped, checksummed with the rest of the snapshot), one row per snapshot row
(the order of the FAISS main tier, ``RowSpace`` rows below ``n_main``)::

    lists.keys.npy          (n, depth) int64    result int ids, best first (-1: none)
    lists.scores.npy        (n, depth) float32  their final scores
    lists.other.npy         (n, width) int64    the other-language group's int ids (-1: none)
    lists.spec_offsets.npy  (n, depth + width + 1) int64  where each item's spec starts and
                            ends in lists.specs.bin (an empty slot ends where it starts)
    lists.specs.bin         why each item is related (``StoredList``)
    lists.card_offsets.npy  (n + 1,) int64      where each row's card lies in lists.cards.bin
    lists.cards.bin         each story as lists show it, once (``StoredList``)
    lists.updated.npy       (n,) float64        when the list's links last changed
    lists.held_keys.npy     (m,) int64          every story a list holds, sorted (the reverse
    lists.held_rows.npy     (m,) int32          index: which rows' lists hold a story, found
                            by binary search; a write looks up the lists it changes in
                            O(log m), not by scanning every list)

``listbuild`` computes them for a snapshot; ``freshness.ListTable`` keeps them current as
articles are upserted and deleted.
"""

from __future__ import annotations

import mmap
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recommender.lists import wire
from recommender.ranking import PREFIX_DEPTH, Filters
from recommender.requests import candidates, queries
from recommender.requests.explain import RelatedItem, RelatedResponse, build_response
from recommender.rowspace.space import RowSpace
from recommender.storage.schema import int_id
from recommender.v1 import recommender_pb2 as pb

LIST_DEPTH = PREFIX_DEPTH
FILES = ("keys", "scores", "other", "spec_offsets", "card_offsets", "updated")
HOLDER_FILES = ("held_keys", "held_rows")  # absent from snapshots written before them
SPECS_FILE = "lists.specs.bin"
CARDS_FILE = "lists.cards.bin"
_NO_FILTERS = Filters()
_RESULTS, _OTHER = b"\x0a", b"\x12"  # RelatedResponse fields 1 and 2, length-delimited


@dataclass(frozen=True)
class StoredList:
    """One article's default related list, encoded for the wire.

    Each item (results, then the other-language group) is two encoded halves of a
    ``RelatedItem``: its ``card`` (the story as a page shows it: id, title, url, language,
    date, source, section; the same in every list that holds the story, so stored once per
    story) and its ``spec`` (why it is related here: scores, key terms, relation, folded).
    Protobuf lets a message's fields come in any order, so ``card + spec`` is the item.
    """

    keys: np.ndarray  # int64, results' int ids, best first
    scores: np.ndarray  # float32 final scores
    other: np.ndarray  # int64, the other-language group
    cards: tuple[bytes, ...]
    specs: tuple[bytes, ...]
    updated: float

    def encoded(self, k: int, snapshot_field: bytes) -> bytes:
        """A serialised ``RelatedResponse`` with the first ``k`` results (k <= depth)."""
        count = len(self.keys)
        parts = [_item(_RESULTS, self.cards[i], self.specs[i]) for i in range(min(k, count))]
        parts += [
            _item(_OTHER, self.cards[i], self.specs[i]) for i in range(count, len(self.cards))
        ]
        return b"".join(parts) + snapshot_field

    def response(self, k: int) -> RelatedResponse:
        """The same answer as domain objects (local callers: the CLI, batch jobs)."""
        message = pb.RelatedResponse.FromString(self.encoded(k, b""))
        return wire.response_from_pb(message)

    def same_links(self, other: StoredList) -> bool:
        """True when both list the same stories as a page shows them (ids, titles, links,
        dates, in order): scores drift with every rebuild of the lexical model, the links a
        site renders do not. A list keeps its ``updated`` time while this holds."""
        return (
            self.keys.tolist() == other.keys.tolist()
            and self.other.tolist() == other.other.tolist()
            and self.cards == other.cards
        )


def _item(tag: bytes, card: bytes, spec: bytes) -> bytes:
    return tag + _varint(len(card) + len(spec)) + card + spec


def _varint(value: int) -> bytes:
    if value < 0x80:  # items are a few hundred bytes: one or two bytes
        return _ONE_BYTE[value]
    if value < 0x4000:
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_ONE_BYTE = [bytes((i,)) for i in range(0x80)]
# the varint of every item size below 16 KiB (an item is a few hundred bytes), computed once
_TWO_BYTES = [*_ONE_BYTE, *(bytes(((i & 0x7F) | 0x80, i >> 7)) for i in range(0x80, 0x4000))]


def snapshot_field(name: str) -> bytes:
    """The encoded ``snapshot`` field appended to every answer from a snapshot."""
    encoded: bytes = pb.RelatedResponse(snapshot=name).SerializeToString()
    return encoded


def default_answer(space: RowSpace, key: int, depth: int) -> RelatedResponse:
    """What ``Related`` by id with default options and no filters returns for ``depth``."""
    query = queries.article_query(space, [space.ids[space.row_of[key]]], [])
    found, ranked = candidates.rank_candidates(space, query, depth, _NO_FILTERS, space.options)
    if not found:
        return RelatedResponse([])
    return build_response(space, query, found, ranked)


def encode(response: RelatedResponse, updated: float) -> StoredList:
    """A response as a stored list (cards and specs of its items, see ``StoredList``)."""
    items = [*response.results, *response.other_languages]
    halves = [_halves(item) for item in items]
    return StoredList(
        keys=np.array([int_id(item.id) for item in response.results], dtype=np.int64),
        scores=np.array([item.score for item in response.results], dtype=np.float32),
        other=np.array([int_id(item.id) for item in response.other_languages], dtype=np.int64),
        cards=tuple(card for card, _ in halves),
        specs=tuple(spec for _, spec in halves),
        updated=updated,
    )


def _halves(item: RelatedItem) -> tuple[bytes, bytes]:
    message = wire.item_to_pb(item)
    card = pb.RelatedItem(
        id=message.id, title=message.title, url=message.url, lang=message.lang,
        published_at=message.published_at, source=message.source, section=message.section,
    )  # fmt: skip
    for name in ("id", "title", "url", "lang", "published_at", "source", "section"):
        message.ClearField(name)
    return card.SerializeToString(), message.SerializeToString()


def compute(space: RowSpace, key: int, depth: int = LIST_DEPTH) -> StoredList:
    """An article's stored list, computed on ``space`` now."""
    return encode(default_answer(space, key, depth), time.time())


# -- the stored arrays ----------------------------------------------------------------------


class StoredLists:
    """A snapshot's lists, memory-mapped; ``entry(row)`` reads one, ``encoded`` answers.

    ``position`` maps a story's int id to its snapshot row (its card's row).
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        specs: bytes | mmap.mmap,
        cards: bytes | mmap.mmap,
        position: Mapping[int, int],
    ) -> None:
        self.keys = arrays["keys"]
        self.scores = arrays["scores"]
        self.other = arrays["other"]
        self.spec_offsets = arrays["spec_offsets"]
        self.card_offsets = arrays["card_offsets"]
        # a memoryview indexes to a Python int in tens of nanoseconds, a numpy array in hundreds
        self._card_bounds = memoryview(np.ascontiguousarray(self.card_offsets, dtype=np.int64).data)
        self.updated = arrays["updated"]
        self.specs = specs
        self.cards = cards
        self.position = position
        self.depth = int(self.keys.shape[1])
        self._held: tuple[np.ndarray, np.ndarray] | None = None
        if "held_keys" in arrays and "held_rows" in arrays:
            self._held = arrays["held_keys"], arrays["held_rows"]

    def holders(self, keys: np.ndarray) -> np.ndarray:
        """The rows whose list (results or other languages) holds one of ``keys``, sorted."""
        if self._held is None:  # a snapshot written before the reverse index: built once
            self._held = holder_index(self.keys, self.other)
        held_keys, held_rows = self._held
        wanted = np.unique(np.asarray(keys, dtype=np.int64))
        starts = np.searchsorted(held_keys, wanted, side="left")
        ends = np.searchsorted(held_keys, wanted, side="right")
        parts = [
            held_rows[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True) if b > a
        ]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def _items(self, row: int, k: int) -> list[tuple[bytes, bytes, bytes]]:
        """(tag, card, spec) of the first ``k`` results and the other-language group."""
        depth = self.depth
        offsets = self.spec_offsets[row].tolist()
        keys = self.keys[row, : min(k, depth)].tolist()
        other = self.other[row].tolist()
        specs, cards, bounds, position = self.specs, self.cards, self._card_bounds, self.position
        items = []
        for slot, key in [*enumerate(keys), *enumerate(other, start=depth)]:
            if key >= 0:
                row = position[key]
                items.append((
                    _RESULTS if slot < depth else _OTHER,
                    cards[bounds[row] : bounds[row + 1]],
                    specs[offsets[slot] : offsets[slot + 1]],
                ))  # fmt: skip
        return items

    def card(self, key: int) -> bytes:
        """The encoded card of a story of the snapshot."""
        row = self.position[key]
        return self.cards[self._card_bounds[row] : self._card_bounds[row + 1]]

    def entry(self, row: int) -> StoredList:
        """The stored list of a snapshot row."""
        items = self._items(row, self.depth)
        keys = self.keys[row]
        count = int((keys >= 0).sum())
        other = self.other[row]
        return StoredList(
            keys=np.asarray(keys[:count]),
            scores=np.asarray(self.scores[row, :count]),
            other=np.asarray(other[other >= 0]),
            cards=tuple(card for _, card, _ in items),
            specs=tuple(spec for _, _, spec in items),
            updated=float(self.updated[row]),
        )

    def encoded(self, row: int, k: int, snapshot_field: bytes) -> bytes:
        """``entry(row).encoded(k, snapshot_field)`` without building the entry: slices of
        the mapped files, joined once. Every page view runs this, in the server's threads
        between gRPC's own work, so it stays one flat loop over plain ints and bytes."""
        depth = self.depth
        offsets = self.spec_offsets[row].tolist()
        keys = self.keys[row, : min(k, depth)].tolist()
        other = self.other[row].tolist()
        specs, cards, bounds, position = self.specs, self.cards, self._card_bounds, self.position
        parts: list[bytes] = []
        for tag, first, group in ((_RESULTS, 0, keys), (_OTHER, depth, other)):
            for slot, key in enumerate(group, start=first):
                if key < 0:
                    continue
                card_row = position[key]
                start, end = bounds[card_row], bounds[card_row + 1]
                spec_start, spec_end = offsets[slot], offsets[slot + 1]
                size = end - start + spec_end - spec_start
                parts += (
                    tag,
                    _TWO_BYTES[size] if size < len(_TWO_BYTES) else _varint(size),
                    cards[start:end],
                    specs[spec_start:spec_end],
                )
        parts.append(snapshot_field)
        return b"".join(parts)

    @classmethod
    def load(cls, directory: Path, position: Mapping[int, int]) -> StoredLists | None:
        """The lists of a snapshot directory (None when it was built without them)."""
        if not (directory / SPECS_FILE).is_file():
            return None
        # plain ndarray views of the mappings: indexing a np.memmap costs microseconds each
        arrays = {
            name: np.load(directory / f"lists.{name}.npy", mmap_mode="r").view(np.ndarray)
            for name in (*FILES, *HOLDER_FILES)
            if name in FILES or (directory / f"lists.{name}.npy").is_file()
        }
        return cls(arrays, _bytes(directory / SPECS_FILE), _bytes(directory / CARDS_FILE), position)


def _bytes(path: Path) -> bytes | mmap.mmap:
    """A file mapped read-only (slices are bytes); a zero-length file cannot be mapped."""
    with path.open("rb") as handle:
        if not path.stat().st_size:
            return b""
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)


def save(
    directory: Path, entries: Sequence[StoredList], row_keys: np.ndarray, depth: int
) -> list[Path]:
    """Write the lists of every snapshot row (in row order; ``row_keys`` the rows' int ids)
    as ``StoredLists`` reads them: each story's card once, in its row."""
    n = len(entries)
    width = max((len(e.other) for e in entries), default=0)
    keys = np.full((n, depth), -1, dtype=np.int64)
    scores = np.zeros((n, depth), dtype=np.float32)
    other = np.full((n, width), -1, dtype=np.int64)
    spec_offsets = np.zeros((n, depth + width + 1), dtype=np.int64)
    updated = np.zeros(n, dtype=np.float64)
    cards: dict[int, bytes] = {}
    position = 0
    with (directory / SPECS_FILE).open("wb") as specs:
        for row, entry in enumerate(entries):
            count, others = len(entry.keys), len(entry.other)
            keys[row, :count] = entry.keys
            scores[row, :count] = entry.scores
            other[row, :others] = entry.other
            slots = [*range(count), *range(depth, depth + others)]
            by_slot = dict(zip(slots, entry.specs, strict=True))
            spec_offsets[row, 0] = position
            for slot in range(depth + width):  # an empty slot ends where the one before does
                spec = by_slot.get(slot)
                if spec is not None:
                    specs.write(spec)
                    position += len(spec)
                spec_offsets[row, slot + 1] = position
            for key, card in zip([*entry.keys.tolist(), *entry.other.tolist()], entry.cards,
                                 strict=True):  # fmt: skip
                cards.setdefault(key, card)
            updated[row] = entry.updated
    card_offsets = np.zeros(n + 1, dtype=np.int64)
    with (directory / CARDS_FILE).open("wb") as out:
        for row, key in enumerate(row_keys.tolist()):
            card = cards.get(key, b"")  # a story in no list needs no card
            out.write(card)
            card_offsets[row + 1] = card_offsets[row] + len(card)
    held_keys, held_rows = holder_index(keys, other)
    arrays: dict[str, np.ndarray] = {
        "keys": keys, "scores": scores, "other": other, "spec_offsets": spec_offsets,
        "card_offsets": card_offsets, "updated": updated, "held_keys": held_keys,
        "held_rows": held_rows,
    }  # fmt: skip
    paths = []
    for name in (*FILES, *HOLDER_FILES):
        path = directory / f"lists.{name}.npy"
        np.save(path, arrays[name])
        paths.append(path)
    return [*paths, directory / SPECS_FILE, directory / CARDS_FILE]


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
