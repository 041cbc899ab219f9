"""An event as a site reports it, checked field by field.

Three kinds, one record (JSON field names; ``time`` is ISO 8601, default now):

- ``impression``: a list was shown: ``source`` (the article it stood under, or ``"home"``),
  ``ids`` (the stories in the order shown);
- ``click``: a link was followed: ``source``, ``target`` (the story clicked), ``position``
  (its place in the list shown, 0 = first);
- ``read``: a page view: ``target`` (the article read).

Every kind names a ``reader``: an opaque key the site chooses (a first-party cookie id). It is
hashed before it is stored (``log``); no address or other identifier is kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recommender.errors import InvalidInputError
from recommender.ingest.records import MAX_ID_LENGTH, echo, parse_datetime

KINDS = ("impression", "click", "read")
HOME = "home"  # the source of a list not under an article (a front page)
MAX_SHOWN = 100  # stories in one impression: a list is at most 100 long (``MAX_K``)
MAX_IMPORTED_SHOWN = 1_000  # a logged impression (MIND's hold up to ~300 candidates)
MAX_READER_LENGTH = 256
MAX_EVENTS_PER_CALL = 500
FUTURE_SLACK_S = 24 * 3600  # a client clock may run ahead; a day more is a bad timestamp
_FIELDS = frozenset({"kind", "reader", "time", "source", "ids", "target", "position"})


@dataclass(frozen=True)
class Event:
    """One checked event; ``at`` in Unix seconds. Fields a kind does not use are empty."""

    kind: str
    reader: str
    at: float
    source: str = ""
    target: str = ""
    ids: tuple[str, ...] = ()
    position: int = -1


def event_from_fields(
    kind: str,
    reader: str,
    at: float | None,
    source: str = "",
    target: str = "",
    ids: tuple[str, ...] | list[str] = (),
    position: int | None = None,
    *,
    where: str = "event",
    now: float | None = None,
    max_shown: int = MAX_SHOWN,
) -> Event:
    """A checked ``Event``; InvalidInputError names ``where`` and the field that is wrong."""
    moment = time.time() if now is None else now

    def bad(field: str, message: str) -> InvalidInputError:
        return InvalidInputError(message, field=f"{where}.{field}")

    if kind not in KINDS:
        raise bad("kind", f"must be one of {', '.join(KINDS)}, got {echo(kind)}")
    if not reader or len(reader) > MAX_READER_LENGTH:
        raise bad("reader", f"must be 1-{MAX_READER_LENGTH} characters (the site's reader key)")
    if at is None:
        at = moment
    if not math.isfinite(at) or at < 0 or at > moment + FUTURE_SLACK_S:
        raise bad("time", "must be a date after 1970 and not later than tomorrow")
    _check_id(source, where, "source", required=kind != "read")
    _check_id(target, where, "target", required=kind != "impression")
    if kind == "impression":
        if not ids or len(ids) > max_shown:
            raise bad("ids", f"an impression lists 1-{max_shown} ids, got {len(ids)}")
        for n, shown in enumerate(ids):
            _check_id(shown, where, f"ids[{n}]", required=True)
        if target:
            raise bad("target", "an impression has no target (a click does)")
    elif ids:
        raise bad("ids", f"only an impression lists ids, not a {kind}")
    if kind == "click":
        if position is None or not 0 <= position < max_shown:
            raise bad("position", f"a click's position is 0-{max_shown - 1} (0 = first)")
    elif position is not None and position != -1:
        raise bad("position", f"only a click has a position, not a {kind}")
    return Event(kind, reader, float(at), source, target, tuple(ids), -1 if position is None
                 else position)  # fmt: skip


def event_from_json(record: Any, where: str, now: float | None = None) -> Event:
    """An event from a decoded JSON object (HTTP body, JSONL line); errors name ``where``."""
    if not isinstance(record, Mapping):
        raise InvalidInputError(f"must be an object, got {type(record).__name__}", field=where)
    unknown = set(record) - _FIELDS
    if unknown:
        raise InvalidInputError(
            f"unknown field {echo(sorted(unknown)[0])}; events have {', '.join(sorted(_FIELDS))}",
            field=where,
        )
    strings = {name: _string(record, name, where) for name in ("kind", "reader", "source",
                                                                "target", "time")}  # fmt: skip
    ids = record.get("ids", [])
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise InvalidInputError("must be a list of article ids (strings)", field=f"{where}.ids")
    position = record.get("position")
    if position is not None and (isinstance(position, bool) or not isinstance(position, int)):
        raise InvalidInputError("must be an integer", field=f"{where}.position")
    return event_from_fields(
        strings["kind"], strings["reader"], parse_time(strings["time"], f"{where}.time"),
        strings["source"], strings["target"], ids, position, where=where, now=now,
    )  # fmt: skip


def parse_time(value: str, field: str) -> float | None:
    """Unix seconds of an ISO 8601 time; None when empty."""
    if not value:
        return None
    try:
        return parse_datetime(value).timestamp()
    except (ValueError, OverflowError):
        raise InvalidInputError(f"{echo(value)} is not an ISO 8601 time", field=field) from None


def _string(record: Mapping[str, Any], name: str, where: str) -> str:
    value = record.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInputError(f"must be a string, got {type(value).__name__}",
                                field=f"{where}.{name}")  # fmt: skip
    return value


def _check_id(value: str, where: str, field: str, *, required: bool) -> None:
    if not value:
        if required:
            raise InvalidInputError("is required", field=f"{where}.{field}")
        return
    if len(value) > MAX_ID_LENGTH or not value.isprintable():
        raise InvalidInputError(
            f"must be a printable article id of at most {MAX_ID_LENGTH} characters",
            field=f"{where}.{field}",
        )
