"""Per-row arrays that a write extends without copying: append-only buffers shared by the
row-space versions that see them.

A ``RowSpace`` is frozen; a write builds the next one with the new rows after the old ones
(``with_changes``). Concatenating every per-row array per write copied them whole: at a million
rows ~40 ms a write (object arrays of languages, sources, sections ~7 ms each, the id list
16 ms; measured). Here a version's array is a prefix view of a buffer with room to spare; the
next version writes its rows into the spare room and views a longer prefix. Older versions
still see only their own prefix, and rows are never changed once written, so nothing a
reader holds moves. A version that is not the buffer's newest (a write replayed on an older
space, see ``live.writer``) copies into a new buffer instead: it must not overwrite rows a
newer version sees. The buffer grows by a quarter when full, so a write costs its own rows,
amortised.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np

GROWTH = 0.25  # spare room made when a buffer is (re)allocated, as a share of its rows
MIN_ROOM = 1024

# id of a buffer -> rows written into it so far (arrays are not hashable; the entry leaves
# with the buffer, which goes with the last view of it)
_filled: dict[int, int] = {}


def appended(values: np.ndarray, new: Sequence[object] | np.ndarray) -> np.ndarray:
    """``values`` followed by ``new`` (same dtype), sharing ``values``' buffer when it can."""
    n, k = len(values), len(new)
    if not k:
        return values
    buffer = values.base
    if (
        isinstance(buffer, np.ndarray)
        and _filled.get(id(buffer)) == n
        and len(buffer) >= n + k
        and values.__array_interface__["data"][0] == buffer.__array_interface__["data"][0]
    ):
        buffer[n : n + k] = np.asarray(new, dtype=values.dtype)
    else:
        buffer = np.empty(n + k + max(MIN_ROOM, int((n + k) * GROWTH)), dtype=values.dtype)
        weakref.finalize(buffer, _filled.pop, id(buffer), None)
        buffer[:n] = values
        buffer[n : n + k] = np.asarray(new, dtype=values.dtype)
    _filled[id(buffer)] = n + k
    return buffer[: n + k]


def column(values: Sequence[object], dtype: type | np.dtype) -> np.ndarray:
    """A per-row array of ``values`` (an object array holds strings as they are)."""
    out = np.empty(len(values), dtype=dtype)
    out[:] = values
    return out
