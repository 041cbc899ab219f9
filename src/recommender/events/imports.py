"""Logged events into the event log: our JSONL (one event object a line, as ``POST
/v1/events`` takes them) and MIND's ``behaviors.tsv`` (Microsoft News; Wu et al., ACL 2020).

A bad line is a ``Rejection`` naming the file, line and field; the valid lines still land.

MIND's lines are ``impression id, user, time, history, impressions``: time as ``11/15/2019
8:55:22 AM`` (UTC), history the news the user clicked before the log began, impressions
``N123-1 N456-0`` (1: clicked). Each line becomes an impression from ``home`` with the ids in
order and a click per ``-1`` at its position; a user's history becomes reads once, the first
time the user appears, timed one second before that impression (MIND does not date them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from recommender.errors import InvalidInputError
from recommender.events.log import EventLog
from recommender.events.records import (
    HOME,
    MAX_IMPORTED_SHOWN,
    Event,
    event_from_fields,
    event_from_json,
)
from recommender.ingest.records import Rejection

BATCH = 5_000


def read_events(path: str | Path, fmt: str = "auto") -> Iterator[Event | Rejection]:
    """The events of a JSONL or MIND ``behaviors.tsv`` file (``fmt`` "auto" decides by the
    first line), in file order, with a ``Rejection`` for each bad line."""
    path = Path(path)
    if fmt == "auto":
        with path.open(encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
        fmt = "jsonl" if first.lstrip().startswith("{") else "mind"
    if fmt == "jsonl":
        yield from _read_jsonl(path)
    elif fmt == "mind":
        yield from _read_mind(path)
    else:
        raise InvalidInputError(f"unknown event format {fmt!r}: jsonl or mind", field="format")


def import_events(
    log: EventLog, path: str | Path, fmt: str = "auto"
) -> tuple[int, list[Rejection]]:
    """Append a file's events to ``log`` in batches; returns (stored, rejections)."""
    stored, rejections, batch = 0, [], []
    for item in read_events(path, fmt):
        if isinstance(item, Rejection):
            rejections.append(item)
            continue
        batch.append(item)
        if len(batch) >= BATCH:
            stored += log.append(batch)
            batch = []
    stored += log.append(batch)
    return stored, rejections


def _read_jsonl(path: Path) -> Iterator[Event | Rejection]:
    with path.open(encoding="utf-8", errors="surrogateescape") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield event_from_json(json.loads(line), "event")
            except json.JSONDecodeError as exc:
                yield Rejection(str(path), number, "line", f"not JSON: {exc.msg}")
            except InvalidInputError as exc:
                yield Rejection(str(path), number, exc.field or "event", str(exc))


def mind_time(value: str) -> float:
    """Unix seconds of MIND's ``11/15/2019 8:55:22 AM`` (UTC)."""
    try:
        moment = datetime.strptime(value.strip(), "%m/%d/%Y %I:%M:%S %p")
    except ValueError:
        raise InvalidInputError(f"{value[:40]!r} is not a time like 11/15/2019 8:55:22 AM",
                                field="time") from None  # fmt: skip
    return moment.replace(tzinfo=UTC).timestamp()


def parse_mind_impressions(value: str) -> list[tuple[str, int | None]]:
    """``N1-1 N2-0 N3`` -> [("N1", 1), ("N2", 0), ("N3", None)] (test files have no labels)."""
    shown: list[tuple[str, int | None]] = []
    for token in value.split():
        news, _, label = token.rpartition("-")
        if news and label in ("0", "1"):
            shown.append((news, int(label)))
        elif "-" not in token:
            shown.append((token, None))
        else:
            raise InvalidInputError(f"{token[:40]!r} is not NEWS_ID-LABEL", field="impressions")
    return shown


def _read_mind(path: Path) -> Iterator[Event | Rejection]:
    seen: set[str] = set()
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield from _mind_line(line, seen)
            except InvalidInputError as exc:
                yield Rejection(str(path), number, exc.field or "line", str(exc))


def _mind_line(line: str, seen: set[str]) -> list[Event]:
    columns = line.rstrip("\r\n").split("\t")
    if len(columns) != 5:
        raise InvalidInputError(f"has {len(columns)} tab-separated columns, MIND has 5",
                                field="line")  # fmt: skip
    _, user, when, history, impressions = columns
    at = mind_time(when)
    shown = parse_mind_impressions(impressions)
    events = []
    if user not in seen:
        seen.add(user)
        events += [event_from_fields("read", user, at - 1, target=news, where="history")
                   for news in history.split()]  # fmt: skip
    if not shown:
        raise InvalidInputError("lists no news", field="impressions")
    # one impression however long (MIND's reach ~300): its metrics are per impression
    events.append(event_from_fields("impression", user, at, HOME, ids=[n for n, _ in shown],
                                    where="impressions", max_shown=MAX_IMPORTED_SHOWN))  # fmt: skip
    events += [
        event_from_fields(
            "click",
            user,
            at,
            HOME,
            news,
            position=n,
            where="impressions",
            max_shown=MAX_IMPORTED_SHOWN,
        )
        for n, (news, label) in enumerate(shown)
        if label == 1
    ]
    return events
