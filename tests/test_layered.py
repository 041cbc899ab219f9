"""LayeredMap: a frozen mapping whose versions share a base (``recommender.rowspace.layered``)."""

from __future__ import annotations

import random

import pytest

from recommender.rowspace import layered
from recommender.rowspace.layered import LayeredMap


def test_versions_behave_as_dict_copies_through_random_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(layered, "FLATTEN_AT", 7)  # merges happen along the way
    rng = random.Random(3)
    expected: dict[int, int] = {k: k * 10 for k in range(20)}
    current = LayeredMap(dict(expected))
    history = [(current, dict(expected))]
    for step in range(300):
        removed = rng.sample(range(40), rng.randint(0, 3))
        put = [(rng.randrange(40), step) for _ in range(rng.randint(0, 3))]
        current = current.changed(put, removed)
        for key in removed:
            expected.pop(key, None)
        expected.update(put)
        history.append((current, dict(expected)))
    for version, wanted in history:  # older versions are unchanged by later writes
        assert dict(version) == wanted
        assert len(version) == len(wanted)
        for key in range(-1, 41):
            assert (key in version) == (key in wanted)
            assert version.get(key) == wanted.get(key)


def test_a_change_does_not_copy_the_base() -> None:
    base = {k: k for k in range(10_000)}
    first = LayeredMap(base)
    second = first.changed([(10_000, 1)], removed=[5])
    assert second._base is base and len(second._top) == 2
    assert 5 in first and 5 not in second and second[10_000] == 1
    assert second.flattened()._top == {}
