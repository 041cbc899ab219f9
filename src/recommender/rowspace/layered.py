"""A frozen mapping that a write copies in time proportional to the write, not to its size.

A ``RowSpace`` is frozen: each write builds a new one, so requests keep one consistent view.
Its id-to-row map and its map of articles written since the snapshot grow with the index and
with the live writes; copying them whole made every ``Delete`` after 100,000 upserts cost
milliseconds more. ``LayeredMap`` shares a large base between versions and copies only a
small top layer of changes (removals are tombstones there). When the top layer grows past
``flatten_at`` entries the two are merged into a new base: a whole copy once per that many
changes, so each write pays the merge's cost divided by ``flatten_at``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

FLATTEN_AT = 2048
_GONE: object = object()  # a tombstone in the top layer: the key was removed


class LayeredMap(Mapping[K, V], Generic[K, V]):
    """A base mapping (shared, never mutated) under a small top layer of changes."""

    __slots__ = ("_base", "_size", "_top")

    def __init__(self, base: Mapping[K, V] | None = None) -> None:
        self._base: Mapping[K, V] = base if base is not None else {}
        self._top: dict[K, object] = {}
        self._size = len(self._base)

    def changed(
        self, put: Iterable[tuple[K, V]] = (), removed: Iterable[K] = ()
    ) -> LayeredMap[K, V]:
        """A new map with ``removed`` keys gone and ``put`` pairs set (in that order)."""
        top = dict(self._top)
        size = self._size
        for key in removed:
            if self._has(top, key):
                top[key] = _GONE
                size -= 1
        for key, value in put:
            if not self._has(top, key):
                size += 1
            top[key] = value
        new: LayeredMap[K, V] = LayeredMap.__new__(LayeredMap)
        new._base, new._top, new._size = self._base, top, size
        return new.flattened() if len(top) > FLATTEN_AT else new

    def flattened(self) -> LayeredMap[K, V]:
        """The same map with its top layer merged into a new base (one whole copy)."""
        if not self._top:
            return self
        return LayeredMap(dict(self.items()))

    def _has(self, top: dict[K, object], key: K) -> bool:
        if key in top:
            return top[key] is not _GONE
        return key in self._base

    def __getitem__(self, key: K) -> V:
        top = self._top
        if key in top:
            value = top[key]
            if value is _GONE:
                raise KeyError(key)
            return value  # type: ignore[return-value]
        return self._base[key]

    def __contains__(self, key: object) -> bool:
        top = self._top
        if key in top:
            return top[key] is not _GONE
        return key in self._base

    def get(self, key: K, default: V | None = None) -> V | None:  # type: ignore[override]
        top = self._top
        if key in top:
            value = top[key]
            return default if value is _GONE else value  # type: ignore[return-value]
        return self._base.get(key, default)

    def get_many(self, keys: Sequence[K], default: V) -> list[V]:
        """``[self.get(key, default) for key in keys]``, the base's part at C speed (a
        request looks up hundreds of candidates)."""
        values = list(map(self._base.get, keys, itertools.repeat(default, len(keys))))
        top = self._top
        if top:
            for i, key in enumerate(keys):
                if key in top:
                    value = top[key]
                    values[i] = default if value is _GONE else value  # type: ignore[assignment]
        return values

    def __iter__(self) -> Iterator[K]:
        top = self._top
        for key in self._base:
            if key not in top:
                yield key
        for key, value in top.items():
            if value is not _GONE:
                yield key

    def __len__(self) -> int:
        return self._size
