"""The Article record and its validation (the readers are in ``readers``).

A record that fails validation becomes a ``Rejection`` naming the file, line, field and
reason; reading goes on, so valid records still land: each line is decoded, parsed and
validated on its own (invalid UTF-8, JSON nested too deeply, a 5,000-digit number, a lone
surrogate or an oversized field costs that record only). Fields outside the schema are kept as
``metadata``. An id seen again later in the same run is reported as a ``Duplicate`` (the later
record wins, as it would if written later).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from recommender.errors import InvalidInputError
from recommender.ingest.text import clean_text

SCHEMA_FIELDS = (
    "id", "title", "lead", "body", "lang", "published_at", "url", "source", "section", "tags",
)  # fmt: skip
_LANG = re.compile(r"^[a-z]{2}$")
MAX_ID_LENGTH = 512
# An article's text and metadata, UTF-8: far above any news article, far below the 4 MiB a
# gRPC client receives by default (``GetArticle`` returns the article whole) and the server's
# 16 MiB message limit, so every stored article can be read back.
MAX_ARTICLE_BYTES = 2 * 1024 * 1024
# CSV fields may be as large as an article (the csv module's default stops at 128 KiB)
csv.field_size_limit(MAX_ARTICLE_BYTES + 1)
_ECHO_LIMIT = 120  # characters of a rejected value quoted back in a message


def echo(value: object, limit: int = _ECHO_LIMIT) -> str:
    """``repr`` of a value for an error message, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


@dataclass(frozen=True)
class Article:
    """One news article. ``published_at`` is timezone-aware (naive input is read as UTC)."""

    id: str
    title: str = ""
    lead: str = ""
    body: str = ""
    lang: str = ""
    published_at: datetime | None = None
    url: str = ""
    source: str = ""
    section: str = ""
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def content_hash(self) -> str:
        """SHA-256 over every stored field: changes whenever the article changes."""
        payload = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict in the article schema (metadata fields merged at the top level)."""
        data = asdict(self)
        data["published_at"] = self.published_at.isoformat() if self.published_at else None
        data["tags"] = list(self.tags)
        metadata = data.pop("metadata")
        return {**metadata, **data}


@dataclass(frozen=True)
class Rejection:
    """A record that could not be read: where, which field, and why."""

    file: str
    line: int
    field: str
    reason: str
    record: Any = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: field '{self.field}': {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for the rejects file."""
        return {
            "file": self.file,
            "line": self.line,
            "field": self.field,
            "reason": self.reason,
            "record": self.record,
        }


def parse_datetime(value: str) -> datetime:
    """ISO 8601 date or datetime, with or without offset; naive values are UTC."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = datetime.combine(date.fromisoformat(text), datetime.min.time())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# Dates a news article can carry: anything outside is a typo or a placeholder (0001-01-01,
# 9999-12-31) that would wreck recency and time windows, and may not even exist in UTC.
EARLIEST_PUBLISHED = datetime(1800, 1, 1, tzinfo=UTC)
LATEST_PUBLISHED = datetime(2200, 1, 1, tzinfo=UTC)
_WEB_URL = re.compile(r"https?://[^\s/?#]+", re.IGNORECASE)


def is_web_url(text: str) -> bool:
    """An absolute http(s) URL with a host: the only links stored (and so rendered)."""
    return bool(_WEB_URL.match(text))


def check_published_range(moment: datetime, raw: str) -> None:
    """InvalidInputError naming ``published_at`` unless ``moment`` lies in the years 1800-2199
    (in UTC: an offset can carry 9999-12-31 into year 10000)."""
    try:
        in_utc = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        in_utc = None
    if in_utc is None or not EARLIEST_PUBLISHED <= in_utc < LATEST_PUBLISHED:
        raise InvalidInputError(f"{echo(raw)} is outside the years 1800-2199", field="published_at")


def parse_date_field(value: str | None, field: str) -> datetime | None:
    """An optional ISO 8601 argument: None or "" means unset; a bad one names ``field``."""
    if not value:
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        raise InvalidInputError(f"{echo(value)} is not an ISO 8601 date", field=field) from None


def _text_field(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and name == "id":
        return str(value)
    if not isinstance(value, str):
        raise InvalidInputError(f"must be a string, got {type(value).__name__}", field=name)
    return value


def _check_encodable(record: dict[str, Any]) -> int:
    """The record's size in UTF-8; a string that cannot be stored (a lone surrogate, from a
    JSON escape such as ``\\ud800`` or undecodable bytes) names its field."""
    size = 0
    for name, value in record.items():
        try:
            size += len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise InvalidInputError(
                f"holds a character UTF-8 cannot encode (a lone surrogate or undecodable "
                f"bytes) at position {exc.start}",
                field=str(name)[:_ECHO_LIMIT],
            ) from None
        except (ValueError, RecursionError, TypeError) as exc:
            raise InvalidInputError(
                f"cannot be stored: {exc}", field=str(name)[:_ECHO_LIMIT]
            ) from None
    return size


def article_from_record(
    record: Any, detect_language: bool = True, *, csv_tags: bool = False
) -> Article:
    """Validate one raw record (a dict) into an Article; InvalidInputError names the field."""
    if not isinstance(record, dict):
        raise InvalidInputError(
            f"a record must be a JSON object, got {type(record).__name__}", field="record"
        )
    size = _check_encodable(record)
    if size > MAX_ARTICLE_BYTES:
        largest = max(record, key=lambda name: len(str(record[name])))
        raise InvalidInputError(
            f"the article is {size:,} bytes, over the limit of {MAX_ARTICLE_BYTES:,} "
            f"(largest field: {str(largest)[:_ECHO_LIMIT]})",
            field=str(largest)[:_ECHO_LIMIT],
        )
    article_id = _text_field(record, "id").strip()
    if not article_id:
        raise InvalidInputError("is required and must be a non-empty string", field="id")
    if len(article_id) > MAX_ID_LENGTH:
        raise InvalidInputError(f"is longer than {MAX_ID_LENGTH} characters", field="id")
    title, lead, body = (_text_field(record, n) for n in ("title", "lead", "body"))
    if not (title.strip() or lead.strip() or body.strip()):
        raise InvalidInputError(
            "at least one of title, lead, body must be non-empty", field="title"
        )
    if not clean_text(" ".join((title, lead, body[:2000]))):
        raise InvalidInputError(
            "title, lead and body hold no text once HTML is removed", field="body"
        )

    lang = _text_field(record, "lang").strip().lower()
    if lang:
        lang = lang.split("-")[0].split("_")[0]
        if not _LANG.match(lang):
            raise InvalidInputError(
                f"{echo(record.get('lang'))} is not an ISO 639-1 code", field="lang"
            )
    elif detect_language:
        lang = detect_lang(" ".join((title, lead, body[:1000])))

    published_at = None
    raw_date = record.get("published_at")
    if raw_date not in (None, ""):
        if not isinstance(raw_date, str):
            raise InvalidInputError("must be an ISO 8601 string", field="published_at")
        try:
            published_at = parse_datetime(raw_date)
        except ValueError:
            raise InvalidInputError(
                f"{echo(raw_date)} is not an ISO 8601 date or datetime", field="published_at"
            ) from None
        check_published_range(published_at, raw_date)

    raw_tags = record.get("tags")
    tags: tuple[str, ...] = ()
    if raw_tags not in (None, ""):
        if csv_tags and isinstance(raw_tags, str):
            raw_tags = [t.strip() for t in re.split(r"[|;,]", raw_tags) if t.strip()]
        if not isinstance(raw_tags, list) or not all(isinstance(t, str) for t in raw_tags):
            raise InvalidInputError("must be a list of strings", field="tags")
        tags = tuple(raw_tags)

    url = _text_field(record, "url").strip()
    if url and not is_web_url(url):
        # a link the block renders: javascript:, data: or a relative path must never be one
        raise InvalidInputError(f"{echo(url)} is not an http(s) URL", field="url")

    metadata = {k: v for k, v in record.items() if k not in SCHEMA_FIELDS}
    return Article(
        id=article_id,
        title=title,
        lead=lead,
        body=body,
        lang=lang,
        published_at=published_at,
        url=url,
        source=_text_field(record, "source"),
        section=_text_field(record, "section"),
        tags=tags,
        metadata=metadata,
    )


_LANGID: Any = None
# Restricting the candidates to languages news sites publish in avoids py3langid's rare
# languages winning on short headlines (e.g. an English headline read as Nigerian Pidgin).
NEWS_LANGUAGES = (
    "ar", "en", "de", "fr", "es", "tr", "ru", "zh", "it", "pl", "pt", "nl", "ja", "ko", "th",
    "fa", "ur", "he", "el", "uk", "cs", "sv", "da", "no", "fi", "hu", "ro", "bg", "hr", "sr",
    "sk", "sl", "id", "ms", "vi", "hi", "bn", "ta", "ca",
)  # fmt: skip


def detect_lang(text: str) -> str:
    """ISO 639-1 code of ``text`` by py3langid (offline); ``""`` when there is no text."""
    global _LANGID
    if not text.strip():
        return ""
    if _LANGID is None:
        from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

        identifier = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=False)
        identifier.set_languages(list(NEWS_LANGUAGES))
        _LANGID = identifier
    return str(_LANGID.classify(text)[0])


@dataclass(frozen=True)
class Deletion:
    """A record asking to delete an article: ``{"id": ..., "deleted": true}``."""

    id: str
    file: str
    line: int


@dataclass(frozen=True)
class Duplicate:
    """An id read again in the same run: the later record (``file:line``) wins."""

    id: str
    file: str
    line: int
    first_file: str
    first_line: int

    def __str__(self) -> str:
        return (
            f"{self.file}:{self.line}: id {echo(self.id)} was already read at "
            f"{self.first_file}:{self.first_line}; the later record wins"
        )


ReadResult = Article | Rejection | Deletion | Duplicate


def validated_record(
    record: Any, name: str, number: int, detect_language: bool, *, csv_tags: bool = False
) -> ReadResult:
    """One raw record of ``name`` (at line ``number``): an Article, a Deletion or a Rejection."""
    if isinstance(record, dict) and record.get("deleted") in (True, "true", "1"):
        article_id = record.get("id")
        if isinstance(article_id, str) and article_id.strip():
            return Deletion(article_id.strip(), name, number)
        return Rejection(name, number, "id", "a deletion needs a non-empty string id", record)
    try:
        return article_from_record(record, detect_language, csv_tags=csv_tags)
    except InvalidInputError as exc:
        return Rejection(name, number, exc.field or "record", str(exc), _storable(record))


def _storable(record: Any) -> Any:
    """The rejected record as the rejects file can hold it (JSON in UTF-8), else a note."""
    try:
        text = json.dumps(record, ensure_ascii=False)
        text.encode("utf-8")
    except (ValueError, RecursionError, TypeError, UnicodeEncodeError):
        return "(not stored: the record cannot be written back as JSON)"
    return record if len(text) <= 10_000 else f"(not stored: {len(text):,} characters)"
