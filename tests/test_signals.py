"""Behaviour signals (issue 26, item 3): decayed popularity with a smoothed CTR, co-reading,
reader histories; kept live event by event, across processes sharing a log, equal to a
recompute from the log; forgetting a reader forgets what they counted for."""

from __future__ import annotations

import random
import time

import pytest

from recommender.events.live import ReaderEvents
from recommender.events.records import event_from_fields
from recommender.events.signals import Signals, SignalSettings
from recommender.storage.schema import int_id

HOUR = 3600.0
T0 = time.time() - 100 * HOUR  # inside the log's default retention (30 days)


def shown(reader, at, ids, source="home"):
    return event_from_fields("impression", reader, at, source, ids=list(ids))


def clicked(reader, at, target, position=0, source="home"):
    return event_from_fields("click", reader, at, source, target, position=position)


def read(reader, at, target):
    return event_from_fields("read", reader, at, target=target)


def random_events(seed: int, n: int, span_hours: float = 72.0):
    rng = random.Random(seed)
    articles = [f"story-{i}" for i in range(40)]
    events = []
    for step in range(n):
        at = T0 + span_hours * HOUR * step / n + rng.uniform(-600, 600)  # clocks disagree
        reader = f"reader-{rng.randrange(25)}"
        kind = rng.random()
        if kind < 0.5:
            events.append(shown(reader, at, rng.sample(articles, 5), rng.choice(articles)))
        elif kind < 0.75:
            events.append(clicked(reader, at, rng.choice(articles), rng.randrange(5)))
        else:
            events.append(read(reader, at, rng.choice(articles)))
    return events


def test_live_signals_in_two_processes_equal_a_recompute_from_the_log(tmp_path):
    settings = SignalSettings(co_read_top=5)  # small, so trimming happens
    first, second = ReaderEvents(tmp_path, settings), ReaderEvents(tmp_path, settings)
    events = random_events(7, 3000)
    for start in range(0, len(events), 37):  # two server processes taking turns
        (first if start % 2 else second).record(events[start : start + 37])
    now = T0 + 80 * HOUR
    recomputed = Signals.replay(first.log.events(), settings).state(now)
    with first.signals() as live_first, second.signals() as live_second:
        assert live_first.applied == live_second.applied == 3000
        assert live_first.state(now) == recomputed
        assert live_second.state(now) == recomputed
    assert any(len(targets) > 1 for targets in recomputed["co_read"].values())


def test_popularity_decays_and_ctr_is_smoothed(tmp_path):
    signals = Signals.replay([], SignalSettings(half_life_hours=6, prior_impressions=20))
    log = ReaderEvents(tmp_path, signals.settings)
    background = [shown(f"r{n}", T0, ["other"]) for n in range(200)]
    background += [clicked(f"r{n}", T0, "other") for n in range(20)]  # site CTR 10 %
    lucky = [shown("a", T0, ["lucky"]), shown("b", T0, ["lucky"]), clicked("a", T0, "lucky")]
    log.record(background + lucky)
    with log.signals() as live:
        key = int_id("lucky")
        assert live.impressions(key, T0) == pytest.approx(2.0)
        assert live.impressions(key, T0 + 6 * HOUR) == pytest.approx(1.0)  # one half-life
        assert live.mean_ctr == pytest.approx(21 / 202)
        # 1 click in 2 impressions is not 50 %: close to the site's 10 %, a little above it
        assert live.mean_ctr < live.ctr(key, T0) < 0.2
        assert live.ctr(int_id("never-shown"), T0) == pytest.approx(live.mean_ctr)


def test_co_reading_counts_reads_within_the_window(tmp_path):
    events = ReaderEvents(tmp_path)
    events.record([
        read("r1", T0, "libya"), read("r1", T0 + HOUR, "tripoli-visit"),
        read("r2", T0, "libya"), clicked("r2", T0 + 2 * HOUR, "tripoli-visit", source="libya"),
        read("r2", T0 + 2 * HOUR + 5, "tripoli-visit"),  # the page view of that click
        read("r3", T0, "libya"), read("r3", T0 + 48 * HOUR, "wuhan"),  # two days later
    ])  # fmt: skip
    with events.signals() as signals:
        libya, visit = int_id("libya"), int_id("tripoli-visit")
        assert [b for b, _ in signals.co_read_top_of(libya, 5, T0)] == [visit]
        assert signals.co_reads(libya, visit, T0) == pytest.approx(2.0, rel=0.3)
        assert signals.co_reads(libya, int_id("wuhan"), T0) == 0.0
    assert events.reader_history("r2") == [libya, visit]  # the click and its page view: one


def test_forget_removes_a_readers_effect_in_every_process(tmp_path):
    first, second = ReaderEvents(tmp_path), ReaderEvents(tmp_path)
    first.record([read("leaving", T0, "a"), read("leaving", T0 + 60, "b"), shown("stay", T0,
                                                                               ["a"])])  # fmt: skip
    first.record([clicked("leaving", T0 + 120, "a")])
    assert second.reader_history("leaving") == [int_id("a"), int_id("b")]
    assert first.forget("leaving") == 3
    for process in (first, second):  # the history at once, everywhere
        assert process.reader_history("leaving") == []
    deadline = time.monotonic() + 30  # the counts: at once here, after a rebuild elsewhere
    for process in (first, second):
        while True:
            with process.signals() as signals:
                if signals.clicks(int_id("a"), T0) == 0.0:
                    assert signals.co_reads(int_id("a"), int_id("b"), T0) == 0.0
                    assert signals.impressions(int_id("a"), T0) == pytest.approx(1.0)
                    break
            assert process is second and time.monotonic() < deadline
            time.sleep(0.05)


def test_a_year_of_events_neither_overflows_nor_drifts(tmp_path):
    settings = SignalSettings(half_life_hours=1)  # 8,760 half-lives: the landmark must move
    events = ReaderEvents(tmp_path, settings)
    events.log.set_retention(0)
    start = T0 - 365 * 24 * HOUR
    year = [shown(f"r{d}", start + d * 24 * HOUR, ["daily", f"day-{d}"]) for d in range(365)]
    for first in range(0, 365, 50):
        events.record(year[first : first + 50])
    now = start + 364 * 24 * HOUR  # the last day: 1 + 2^-24 + 2^-48 + ...
    with events.signals() as live:
        assert live.impressions(int_id("daily"), now) == pytest.approx(1 / (1 - 2**-24), rel=1e-6)
        assert live.state(now) == Signals.replay(events.log.events(), settings).state(now)
        assert live.impressions(int_id("daily"), now + 5000 * 24 * HOUR) == 0.0
