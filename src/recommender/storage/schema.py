"""The article store's SQLite schema, the stable integer ids of articles, and how a row
reads back as an article (``store.ArticleStore`` is the store itself).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from recommender.ingest.records import Article, parse_datetime

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS articles (
    int_id INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    lead TEXT NOT NULL,
    body TEXT NOT NULL,
    lang TEXT NOT NULL,
    published_at TEXT,
    published_ts REAL,
    url TEXT NOT NULL,
    source TEXT NOT NULL,
    section TEXT NOT NULL,
    tags TEXT NOT NULL,
    metadata TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS articles_seq ON articles (seq);
CREATE TABLE IF NOT EXISTS vectors (
    int_id INTEGER NOT NULL,
    model TEXT NOT NULL,
    text_hash BLOB NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (int_id, model)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deletions (
    int_id INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deletions_seq ON deletions (seq);
"""
SCHEMA_VERSION = "1"
COLUMNS = "int_id, id, title, lead, body, lang, published_at, url, source, section, tags, metadata"
BATCH = 500


@functools.lru_cache(maxsize=1 << 16)  # every request hashes its id: hot ids repeat
def int_id(article_id: str) -> int:
    """The 63-bit FAISS id of an article id (stable across machines and rebuilds)."""
    digest = hashlib.sha256(article_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


@dataclass(frozen=True)
class StoredArticle:
    """An article as stored, with its FAISS id."""

    int_id: int
    article: Article


@dataclass(frozen=True)
class UpsertOutcome:
    """What an upsert did to each article."""

    added: list[str]
    updated: list[str]
    unchanged: list[str]


def row_to_stored(row: Sequence[Any]) -> StoredArticle:
    """A row of ``articles`` (``COLUMNS`` in order) as a stored article."""
    (key, article_id, title, lead, body, lang, published, url, source, section, tags, meta) = row
    return StoredArticle(
        int_id=int(key),
        article=Article(
            id=article_id,
            title=title,
            lead=lead,
            body=body,
            lang=lang,
            published_at=parse_datetime(published) if published else None,
            url=url,
            source=source,
            section=section,
            tags=tuple(json.loads(tags)),
            metadata=json.loads(meta),
        ),
    )
