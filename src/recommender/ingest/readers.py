"""Reading article sources: JSON lines and CSV files (``-``: stdin, ``.gz`` compressed), and
RSS/Atom feeds and HTML pages through ``websources``; every record is validated by
``records.validated_record``, with its file and line.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import sys
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

from recommender.errors import InvalidInputError
from recommender.ingest.records import Article, Duplicate, ReadResult, Rejection, validated_record
from recommender.ingest.websources import is_url, is_web_source, read_web_source


def _open_binary(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    if path.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def missing_sources(paths: Iterable[str | Path]) -> list[str]:
    """The sources that are not readable files (``-`` is stdin): check them all before any
    work, so that a typo in the last one does not leave the first ones half indexed."""
    names = [str(p) for p in paths]
    return [n for n in names if n != "-" and not is_url(n) and not Path(n).is_file()]


def read_articles(path: str | Path, detect_language: bool = True) -> Iterator[ReadResult]:
    """Articles and rejections from one source, in file order (line numbers from 1).

    ``.csv`` (header row; ``tags`` separated by ``|``, ``;`` or ``,``) or JSON lines
    (``.jsonl``, ``.jsonl.gz``, ``-`` for stdin); a UTF-8 byte order mark is allowed. RSS and
    Atom feeds and HTML pages, files or URLs, are read by ``websources``. A missing file
    raises ``InvalidInputError``.
    """
    for _, item in _located(str(path), detect_language):
        yield item


def _located(name: str, detect_language: bool) -> Iterator[tuple[int, ReadResult]]:
    """``read_articles`` with each result's line number."""
    if missing_sources([name]):
        raise InvalidInputError(f"{name}: no such file", field="source")
    if is_web_source(name):
        yield from read_web_source(name, detect_language)
        return
    is_csv = name.removesuffix(".gz").endswith(".csv")
    with _open_binary(name) as raw:
        try:
            if is_csv:
                # undecodable bytes become lone surrogates, rejected with their record
                text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape",
                                        newline="")  # fmt: skip
                yield from _read_csv(text, name, detect_language)
            else:
                yield from _read_jsonl(raw, name, detect_language)
        except (OSError, EOFError, zlib.error) as exc:  # truncated gzip and the like
            yield 0, Rejection(name, 0, "file", f"cannot read further: {exc}")


def _read_jsonl(
    handle: BinaryIO, name: str, detect_language: bool
) -> Iterator[tuple[int, ReadResult]]:
    for number, raw in enumerate(handle, start=1):
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"not UTF-8: byte {exc.start + 1} of the line ({exc.reason})"
            yield number, Rejection(name, number, "encoding", reason)
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            reason = f"invalid JSON: {exc.msg} at column {exc.colno}"
            yield number, Rejection(name, number, "json", reason)
            continue
        except RecursionError:
            yield number, Rejection(name, number, "json", "JSON nested too deeply")
            continue
        except ValueError as exc:  # e.g. an integer of thousands of digits
            yield number, Rejection(name, number, "json", f"invalid JSON: {str(exc)[:200]}")
            continue
        yield number, validated_record(record, name, number, detect_language, csv_tags=False)


def _read_csv(handle: TextIO, name: str, detect_language: bool) -> Iterator[tuple[int, ReadResult]]:
    reader = csv.DictReader(handle)
    try:
        fieldnames = reader.fieldnames
    except csv.Error as exc:
        yield 1, Rejection(name, 1, "header", f"unreadable CSV header: {exc}")
        return
    if fieldnames is None or "id" not in fieldnames:
        yield 1, Rejection(name, 1, "id", "CSV header has no 'id' column")
        return
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, Rejection(name, start, "record", f"unreadable CSV record: {exc}")
            continue
        record = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
        yield start, validated_record(record, name, start, detect_language, csv_tags=True)


def read_many(
    paths: Iterable[str | Path],
    detect_language: bool = True,
    *,
    web_items: dict[str, tuple[str, int]] | None = None,
) -> Iterator[ReadResult]:
    """``read_articles`` over several sources, in order, with ids read twice reported
    (a ``Duplicate`` just before the later record). ``web_items``, when given, holds where
    each article last read from a feed or page came from (id -> source, line), as it is read:
    the id of such an item is the publisher's, not the site's own."""
    first_seen: dict[str, tuple[str, int]] = {}
    for path in paths:
        name = str(path)
        from_web = is_web_source(name)
        for number, item in _located(name, detect_language):
            if isinstance(item, Article):
                where = first_seen.get(item.id)
                if where is not None:
                    yield Duplicate(item.id, name, number, *where)
                first_seen[item.id] = (name, number)
                if web_items is not None:
                    if from_web:
                        web_items[item.id] = (name, number)
                    else:
                        web_items.pop(item.id, None)
            yield item
