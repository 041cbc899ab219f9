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
    lists.specs.json.bin    each item's JSON pieces (``jsonwire``: score, rest), as the specs
    lists.spec_json_offsets.npy  (n, 2 (depth + width) + 1) int64: two pieces per slot
    lists.cards.json.bin    each story's JSON pieces (head, middle), as the cards
    lists.card_json_offsets.npy  (2 n + 1,) int64: two pieces per row

The JSON pieces let the HTTP API answer a page view by joining bytes too (``json``); a
snapshot written before them derives them from the protobuf halves when a list is read.

``listbuild`` computes them for a snapshot; ``freshness.ListTable`` keeps them current as
articles are upserted and deleted.
"""

from __future__ import annotations

import mmap
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recommender.lists import jsonwire, wire
from recommender.lists.files import (
    CARDS_FILE,
    CARDS_JSON_FILE,
    FILES,
    HOLDER_FILES,
    JSON_FILES,
    SPECS_FILE,
    SPECS_JSON_FILE,
    holder_index,
    mapped_bytes,
)
from recommender.ranking import PREFIX_DEPTH, Filters
from recommender.requests import candidates, queries
from recommender.requests.explain import RelatedResponse, build_response
from recommender.rowspace.space import RowSpace
from recommender.storage.schema import int_id
from recommender.v1 import recommender_pb2 as pb

LIST_DEPTH = PREFIX_DEPTH
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
    ``card_json`` and ``spec_json`` are the same halves as JSON pieces (``jsonwire``).
    """

    keys: np.ndarray  # int64, results' int ids, best first
    scores: np.ndarray  # float32 final scores
    other: np.ndarray  # int64, the other-language group
    cards: tuple[bytes, ...]
    specs: tuple[bytes, ...]
    updated: float
    card_json: tuple[tuple[bytes, bytes], ...]
    spec_json: tuple[tuple[bytes, bytes], ...]

    def encoded(self, k: int, snapshot_field: bytes) -> bytes:
        """A serialised ``RelatedResponse`` with the first ``k`` results (k <= depth)."""
        count = len(self.keys)
        parts = [_item(_RESULTS, self.cards[i], self.specs[i]) for i in range(min(k, count))]
        parts += [
            _item(_OTHER, self.cards[i], self.specs[i]) for i in range(count, len(self.cards))
        ]
        return b"".join(parts) + snapshot_field

    def json(self, k: int, tail: bytes) -> bytes:
        """The same answer as JSON (``jsonwire.snapshot_tail`` closes it)."""
        count = len(self.keys)
        pieces = [
            (head, score, middle, rest)
            for (head, middle), (score, rest) in zip(self.card_json, self.spec_json, strict=True)
        ]
        return jsonwire.answer(pieces[: min(k, count)], pieces[count:], tail)

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
    return tag + wire.varint(len(card) + len(spec)) + card + spec


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
    messages = [wire.item_to_pb(item) for item in items]
    card_json = tuple(jsonwire.card_pieces(message) for message in messages)
    spec_json = tuple(jsonwire.spec_pieces(message) for message in messages)
    halves = [_halves(message) for message in messages]  # clears the messages' card fields
    return StoredList(
        keys=np.array([int_id(item.id) for item in response.results], dtype=np.int64),
        scores=np.array([item.score for item in response.results], dtype=np.float32),
        other=np.array([int_id(item.id) for item in response.other_languages], dtype=np.int64),
        cards=tuple(card for card, _ in halves),
        specs=tuple(spec for _, spec in halves),
        updated=updated,
        card_json=card_json,
        spec_json=spec_json,
    )


_CARD_FIELDS = ("id", "title", "url", "lang", "published_at", "source", "section")


def _halves(message: pb.RelatedItem) -> tuple[bytes, bytes]:
    """(card, spec) of an item; the message is left holding its spec fields only."""
    card = pb.RelatedItem(**{name: getattr(message, name) for name in _CARD_FIELDS})
    for name in _CARD_FIELDS:
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
        json_blobs: tuple[bytes | mmap.mmap, bytes | mmap.mmap] | None = None,
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
        # (spec pieces, their offsets, card pieces, their bounds); None: written before them
        self._json: tuple[bytes | mmap.mmap, np.ndarray, bytes | mmap.mmap, memoryview] | None
        self._json = None
        if json_blobs is not None:
            card_json_offsets = np.ascontiguousarray(arrays["card_json_offsets"], dtype=np.int64)
            self._json = (json_blobs[0], arrays["spec_json_offsets"], json_blobs[1],
                          memoryview(card_json_offsets.data))  # fmt: skip

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
        cards = tuple(card for _, card, _ in items)
        specs = tuple(spec for _, _, spec in items)
        if self._json is not None:
            pieces = self._json_items(row, self.depth)
            card_json = tuple((head, middle) for head, _, middle, _ in pieces)
            spec_json = tuple((score, rest) for _, score, _, rest in pieces)
        else:  # a snapshot written before the JSON pieces: derived from the protobuf halves
            messages = [pb.RelatedItem.FromString(card + spec) for card, spec in zip(
                cards, specs, strict=True)]  # fmt: skip
            card_json = tuple(jsonwire.card_pieces(message) for message in messages)
            spec_json = tuple(jsonwire.spec_pieces(message) for message in messages)
        return StoredList(
            keys=np.asarray(keys[:count]),
            scores=np.asarray(self.scores[row, :count]),
            other=np.asarray(other[other >= 0]),
            cards=cards,
            specs=specs,
            updated=float(self.updated[row]),
            card_json=card_json,
            spec_json=spec_json,
        )

    def json(self, row: int, k: int, tail: bytes) -> bytes | None:
        """``entry(row).json(k, tail)`` joined from the mapped JSON pieces (None: the
        snapshot was written without them; write the protobuf answer as JSON instead). One
        flat loop over plain ints and bytes, as ``encoded``."""
        if self._json is None:
            return None
        specs, spec_offsets, cards, bounds = self._json
        depth, position = self.depth, self.position
        offsets = spec_offsets[row].tolist()
        keys = self.keys[row, : min(k, depth)].tolist()
        parts = [jsonwire.RESULTS_OPEN]
        for first, group in ((0, keys), (depth, self.other[row].tolist())):
            if first:
                parts.append(jsonwire.OTHER_OPEN)
            separator = b""
            for slot, key in enumerate(group, start=first):
                if key < 0:
                    continue
                card, piece = 2 * position[key], 2 * slot
                parts += (
                    separator,
                    cards[bounds[card] : bounds[card + 1]],
                    specs[offsets[piece] : offsets[piece + 1]],
                    cards[bounds[card + 1] : bounds[card + 2]],
                    specs[offsets[piece + 1] : offsets[piece + 2]],
                )
                separator = jsonwire.SEPARATOR
        parts.append(tail)
        return b"".join(parts)

    def _json_items(self, row: int, k: int) -> list[tuple[bytes, bytes, bytes, bytes]]:
        """(head, score, middle, rest) of the first ``k`` results and the other-language
        group: one flat loop over plain ints and bytes, as ``encoded``."""
        assert self._json is not None
        specs, spec_offsets, cards, bounds = self._json
        depth, position = self.depth, self.position
        offsets = spec_offsets[row].tolist()
        keys = self.keys[row, : min(k, depth)].tolist()
        items = []
        for slot, key in [*enumerate(keys), *enumerate(self.other[row].tolist(), start=depth)]:
            if key < 0:
                continue
            card = 2 * position[key]
            piece = 2 * slot
            items.append((
                cards[bounds[card] : bounds[card + 1]],
                specs[offsets[piece] : offsets[piece + 1]],
                cards[bounds[card + 1] : bounds[card + 2]],
                specs[offsets[piece + 1] : offsets[piece + 2]],
            ))  # fmt: skip
        return items

    def encoded(self, row: int, k: int, snapshot_field: bytes) -> bytes:
        """``entry(row).encoded(k, snapshot_field)`` without building the entry: slices of
        the mapped files, joined once. Every page view runs this, in the server's threads
        between gRPC's own work, so it stays one flat loop over plain ints and bytes."""
        depth = self.depth
        offsets = self.spec_offsets[row].tolist()
        keys = self.keys[row, : min(k, depth)].tolist()
        other = self.other[row].tolist()
        specs, cards, bounds, position = self.specs, self.cards, self._card_bounds, self.position
        varints = wire.SMALL_VARINTS
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
                    varints[size] if size < len(varints) else wire.varint(size),
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
            for name in (*FILES, *HOLDER_FILES, *JSON_FILES)
            if name in FILES or (directory / f"lists.{name}.npy").is_file()
        }
        json_blobs = None
        if all(name in arrays for name in JSON_FILES):
            json_blobs = (mapped_bytes(directory / SPECS_JSON_FILE),
                          mapped_bytes(directory / CARDS_JSON_FILE))  # fmt: skip
        specs, cards = mapped_bytes(directory / SPECS_FILE), mapped_bytes(directory / CARDS_FILE)
        return cls(arrays, specs, cards, position, json_blobs)
