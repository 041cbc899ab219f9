"""Near-duplicate collapse: keep the best of each group of near-identical stories.

``ranking.rank`` folds every candidate whose cosine with a better-ranked kept story reaches
the model's collapse threshold into that story, and counts what it folded. Cosines are
computed in float64 (``ordering``): a float32 product rounds a pair's cosine by where the
pair lies in the block, and a pair at the threshold must fold the same way on every path.
"""

from __future__ import annotations

import numpy as np


def collapse(
    order: list[int], vectors: np.ndarray, threshold: float, limit: int | None = None
) -> tuple[list[int], dict[int, int]]:
    """Keep the best of each group of near-identical stories; count what was folded into it.

    With ``limit``, stop once that many stories are kept (the list needs no more): the later
    candidates then only count as folded into the kept story they are nearest to.
    """
    if not order:
        return [], {}
    if limit is None or limit >= len(order):
        return _collapse_all(order, vectors, threshold)
    ordered: np.ndarray = np.asarray(vectors[order], dtype=np.float64)
    kept: list[int] = []  # positions into ``order``
    folded: dict[int, int] = {}
    position = 0
    while position < len(order) and len(kept) < limit:
        # a block of candidates against every earlier one in one product (one per candidate
        # cost more than the whole list's ranking); the list is usually full within a block
        start, end = position, min(len(order), position + 2 * limit)
        similarity = ordered[start:end] @ ordered[:end].T
        earlier = np.arange(end)[None, :] < np.arange(start, end)[:, None]
        near_earlier = ((similarity >= threshold) & earlier).any(axis=1).tolist()
        while position < end and len(kept) < limit:
            offset = position - start
            if not (
                near_earlier[offset]
                and _fold(similarity[offset, kept], threshold, order, kept, folded)
            ):
                kept.append(position)
            position += 1
    if position < len(order):
        # one product for the rest of the pool against the kept stories
        rest = ordered[position:] @ ordered[kept].T
        for row in np.flatnonzero(rest.max(axis=1) >= threshold):
            _fold(rest[row], threshold, order, kept, folded)
    return [order[p] for p in kept], folded


def _fold(
    similarity: np.ndarray,
    threshold: float,
    order: list[int],
    kept: list[int],
    folded: dict[int, int],
) -> bool:
    """Count a candidate as folded into the kept story it is nearest to, if near enough.

    ``similarity`` holds its cosine with each kept story, in the order of ``kept``.
    """
    if not kept:
        return False
    j = int(np.argmax(similarity))
    if similarity[j] < threshold:
        return False
    folded[order[kept[j]]] = folded.get(order[kept[j]], 0) + 1
    return True


def _collapse_all(
    order: list[int], vectors: np.ndarray, threshold: float
) -> tuple[list[int], dict[int, int]]:
    ordered: np.ndarray = np.asarray(vectors[order], dtype=np.float64)
    similarity = ordered @ ordered.T  # one product instead of one per candidate
    # most candidates have no near-identical story before them: those are kept without a look
    near_earlier = np.tril(similarity >= threshold, -1).any(axis=1).tolist()
    kept: list[int] = []  # positions into ``order``
    folded: dict[int, int] = {}
    for position in range(len(order)):
        if near_earlier[position] and _fold(
            similarity[position, kept], threshold, order, kept, folded
        ):
            continue
        kept.append(position)
    return [order[p] for p in kept], folded
