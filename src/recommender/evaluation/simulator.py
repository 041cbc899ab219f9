"""A site's readers, simulated, written as a MIND click log (``news.tsv``, ``behaviors.tsv``):
data for the ranker's tests and ``make quality`` where no real log may be shipped.

Each reader has a favourite section and a short history in it. Stories are released over the
days of the run, each with a hidden appeal. A front page shows a reader ``shown`` stories of
the last days in random order, and each is clicked with probability

    0.9 x position bias (1 / (1 + position)^0.6) x interest (1 in the favourite section, 0.15
    elsewhere) x appeal x freshness (half every 1.5 days)

so content (the history's section), popularity (appeal shows as CTR), freshness and position
all matter, and no one signal knows everything. ``random_clicks`` makes every click a coin
toss (12 %): then no method may beat random, which is how the tests can fail.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

START = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Simulation:
    """How many readers, days and impressions, and whether clicks mean anything."""

    readers: int = 300
    days: int = 6
    impressions_per_day: int = 300
    shown: int = 10
    fresh_days: int = 2  # a front page shows stories of the last days
    random_clicks: bool = False
    seed: int = 0


def simulate(articles: Sequence[dict[str, Any]], simulation: Simulation) -> tuple[str, str]:
    """``(news.tsv, behaviors.tsv)`` texts for ``articles`` (records with id, title, lead,
    section)."""
    rng = random.Random(simulation.seed)
    released, section_of, appeal = _released(articles, simulation, rng)
    sections = sorted(set(section_of.values()))
    by_section = {name: [i for i, s in section_of.items() if s == name] for name in sections}
    readers = []
    for n in range(simulation.readers):
        favourite = rng.choice(sections)
        history = rng.sample(by_section[favourite], min(3, len(by_section[favourite])))
        readers.append((f"U{n}", favourite, history))
    lines: list[str] = []
    for day in range(simulation.days):
        for n in range(simulation.impressions_per_day):
            at = day + (n + rng.random()) / simulation.impressions_per_day
            user, favourite, history = rng.choice(readers)
            fresh = _fresh(released, at, simulation)
            pool = fresh if len(fresh) >= simulation.shown else [i for i, t in released.items()
                                                                 if t <= at]  # fmt: skip
            if len(pool) < 2:
                continue
            shown = rng.sample(pool, min(simulation.shown, len(pool)))
            labels = []
            for position, story in enumerate(shown):
                liked = section_of[story] == favourite
                chance = _chance(simulation, position, liked, appeal[story], at - released[story])
                labels.append(f"{story}-{int(rng.random() < chance)}")
            when = (START + timedelta(days=at)).strftime("%m/%d/%Y %I:%M:%S %p")
            lines.append(f"{len(lines) + 1}\t{user}\t{when}\t{' '.join(history)}\t"
                         f"{' '.join(labels)}")  # fmt: skip
    news = [
        "\t".join(
            [
                s["id"],
                s.get("section", ""),
                s.get("section", ""),
                _tsv(s.get("title", "")),
                _tsv(s.get("lead", "")),
                s.get("url", ""),
                "[]",
                "[]",
            ]
        )
        for s in articles
    ]
    return "\n".join(news) + "\n", "\n".join(lines) + "\n"


def simulate_article_pages(
    articles: Sequence[dict[str, Any]], simulation: Simulation
) -> list[dict[str, Any]]:
    """Events (our JSON schema) of "read also" blocks under articles: a reader reads a fresh
    story (in their favourite section two times in three), and the block under it shows
    ``shown`` other fresh stories in random order, each clicked with probability

        0.9 x position bias x relatedness (1 in the story's section, 0.15 elsewhere) x
        appeal x freshness

    (``random_clicks``: 12 %). What ``eval clicks`` measures Related-with-the-ranker on."""
    rng = random.Random(simulation.seed)
    released, section_of, appeal = _released(articles, simulation, rng)
    favourites = [rng.choice(sorted(set(section_of.values()))) for _ in range(simulation.readers)]
    events: list[dict[str, Any]] = []
    for day in range(simulation.days):
        for n in range(simulation.impressions_per_day):
            at = day + (n + rng.random()) / simulation.impressions_per_day
            reader = rng.randrange(simulation.readers)
            fresh = _fresh(released, at, simulation)
            if len(fresh) < simulation.shown + 1:
                continue
            liked = [i for i in fresh if section_of[i] == favourites[reader]]
            source = rng.choice(liked if liked and rng.random() < 2 / 3 else fresh)
            shown = rng.sample([i for i in fresh if i != source], simulation.shown)
            when = (START + timedelta(days=at)).isoformat()
            key = f"reader-{reader}"
            events.append({"kind": "read", "reader": key, "target": source, "time": when})
            events.append({"kind": "impression", "reader": key, "source": source, "ids": shown,
                           "time": when})  # fmt: skip
            for position, story in enumerate(shown):
                related = section_of[story] == section_of[source]
                age = at - released[story]
                if rng.random() < _chance(simulation, position, related, appeal[story], age):
                    click = {"kind": "click", "reader": key, "source": source, "target": story}
                    events.append({**click, "position": position, "time": when})
    return events


def _released(
    articles: Sequence[dict[str, Any]], simulation: Simulation, rng: random.Random
) -> tuple[dict[str, float], dict[str, str], dict[str, float]]:
    """Each story's release day (in a random order over the run), section and hidden appeal."""
    stories = list(articles)
    rng.shuffle(stories)
    released = {s["id"]: n * simulation.days / len(stories) for n, s in enumerate(stories)}
    section_of = {s["id"]: s.get("section", "") for s in stories}
    appeal = {s["id"]: rng.betavariate(2, 2) for s in stories}
    return released, section_of, appeal


def _fresh(released: dict[str, float], at: float, simulation: Simulation) -> list[str]:
    """The stories a page shows at ``at``: released in the last ``fresh_days``."""
    return [i for i, t in released.items() if at - simulation.fresh_days <= t <= at]


def _chance(
    simulation: Simulation, position: int, liked: bool, appeal: float, age_days: float
) -> float:
    """A shown story's click probability (the formula of the module doc)."""
    if simulation.random_clicks:
        return 0.12
    interest = 1.0 if liked else 0.15
    freshness = 0.5 ** (age_days / 1.5)
    chance: float = 0.9 * (1 + position) ** -0.6 * interest * appeal * freshness
    return chance


def _tsv(text: str) -> str:
    return " ".join(text.split())


def news_records(news_tsv: str) -> list[dict[str, Any]]:
    """MIND's ``news.tsv`` as article records (id, section = category, title, lead =
    abstract, url): what ``eval clicks`` indexes."""
    records = []
    for number, line in enumerate(news_tsv.splitlines(), start=1):
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) < 5:
            raise ValueError(f"news.tsv:{number}: {len(columns)} columns, MIND has 8")
        record = {"id": columns[0], "section": columns[1], "title": columns[3],
                  "lead": columns[4]}  # fmt: skip
        if len(columns) > 5 and columns[5].startswith(("http://", "https://")):
            record["url"] = columns[5]
        records.append(record)
    return records
