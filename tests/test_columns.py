"""Append-only per-row arrays shared by row-space versions (``recommender.rowspace.columns``)."""

from __future__ import annotations

import random

import numpy as np

from recommender.rowspace.columns import appended, column


def test_versions_keep_their_rows_through_random_appends_and_forks() -> None:
    rng = random.Random(5)
    start = column([f"a{i}" for i in range(50)], object)
    history = [(start, [f"a{i}" for i in range(50)])]
    for step in range(400):
        # mostly the newest version grows (a write); sometimes an older one (a replay)
        base, rows = history[-1] if rng.random() < 0.8 else rng.choice(history)
        new = [f"s{step}-{j}" for j in range(rng.randint(0, 40))]
        history.append((appended(base, new), rows + new))
    for version, rows in history:  # no version sees another's rows
        assert version.tolist() == rows


def test_a_write_fills_spare_room_instead_of_copying_every_row() -> None:
    stamps = np.arange(100_000, dtype=np.float64)
    first = appended(stamps, [1.0])  # from a snapshot's array: one copy, with room to spare
    assert first.base is not None and len(first.base) > len(first)
    later = first
    for value in range(500):
        later = appended(later, [float(value)])
    assert later.base is first.base  # every write since went into the same buffer
    assert later[:100_000].tolist() == stamps.tolist() and later[-1] == 499.0
    assert np.shares_memory(first, later) and len(first) == 100_001
