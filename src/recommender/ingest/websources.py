"""Sources of the web: RSS 2.0 / RSS 1.0 / Atom feeds and HTML article pages, files or URLs.

Each feed item or page becomes an article record and goes through the same validation as a
JSONL line (``articles.article_from_record``); a broken item is a ``Rejection`` naming the
file, the item's line in it and the item's number, and the other items still land.

- **Feeds** are read by feedparser (well kept, lenient with the malformed XML that real feeds
  carry). An item's id is its ``guid``/``id``, else its link; title, summary (lead) and full
  content (``content:encoded`` or Atom ``content``, the body); its date (RFC 822, ISO 8601 and
  the other formats feedparser reads); the feed's or item's language; the feed's title as the
  source; the first category as the section and every category as tags.
- **Pages** are read by trafilatura (main-text extraction: the article without navigation,
  footers or comments) plus the page's own metadata: ``<html lang>``, ``<link
  rel=canonical>`` (the id, else ``og:url``, else the URL the page was fetched from),
  ``article:published_time``, ``article:section``, ``og:site_name``.

A source is read as a feed or a page by its name (``.rss``, ``.atom``, ``.xml``; ``.html``,
``.htm``), or, for a URL, by what it holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recommender.ingest.fetch import MAX_FETCH_BYTES, fetch
from recommender.ingest.records import (
    EARLIEST_PUBLISHED,
    LATEST_PUBLISHED,
    ReadResult,
    Rejection,
    is_web_url,
    validated_record,
)

FEED_SUFFIXES = (".rss", ".atom", ".xml")
PAGE_SUFFIXES = (".html", ".htm")
USER_AGENT = "recommender/0.1 (+https://github.com/; related-stories indexer)"
_ITEM_START = re.compile(rb"<(?:\w+:)?(?:item|entry)[\s>/]")


def is_url(name: str) -> bool:
    """An http(s) or file URL rather than a path."""
    return name.startswith(("http://", "https://", "file://"))


def is_web_source(name: str) -> bool:
    """Whether ``name`` is read here (a URL, a feed or a page) rather than as JSONL/CSV."""
    lowered = name.lower()
    return is_url(name) or lowered.endswith(FEED_SUFFIXES + PAGE_SUFFIXES)


def read_web_source(name: str, detect_language: bool) -> Iterator[tuple[int, ReadResult]]:
    """Records (with their line numbers) of one feed or page, file or URL."""
    try:
        data, final_url = fetch(name, USER_AGENT) if is_url(name) else (_read_file(Path(name)), "")
    except (OSError, ValueError) as exc:
        yield 0, Rejection(name, 0, "source", f"cannot read: {exc}")
        return
    lowered = name.lower().split("?")[0]
    if lowered.endswith(PAGE_SUFFIXES) or (
        not lowered.endswith(FEED_SUFFIXES) and not _looks_like_feed(data)
    ):
        yield 1, _page_record(data, name, final_url, detect_language)
    else:
        yield from _feed_records(data, name, detect_language)


def _read_file(path: Path) -> bytes:
    """A local feed or page, refused past the size a fetched one may have."""
    with path.open("rb") as handle:
        data = handle.read(MAX_FETCH_BYTES + 1)
    if len(data) > MAX_FETCH_BYTES:
        raise ValueError(f"larger than {MAX_FETCH_BYTES:,} bytes")
    return data


def _looks_like_feed(data: bytes) -> bool:
    head = data[:2048].lower()
    return any(tag in head for tag in (b"<rss", b"<feed", b"<rdf:rdf"))


def _feed_records(
    data: bytes, name: str, detect_language: bool
) -> Iterator[tuple[int, ReadResult]]:
    import feedparser

    parsed = feedparser.parse(data)
    entries = parsed.get("entries", [])
    if not entries:
        problem = parsed.get("bozo_exception")
        where = getattr(problem, "getLineNumber", lambda: 0)() if problem else 0
        reason = f"not a readable feed: {problem}" if problem else "the feed has no items"
        yield where, Rejection(name, where, "feed", reason)
        return
    feed = parsed.get("feed", {})
    starts = _item_lines(data)
    lines = starts if len(starts) == len(entries) else [0] * len(entries)
    for number, (entry, line) in enumerate(zip(entries, lines, strict=True), start=1):
        record, problem = _item_record(entry, feed)
        if problem is not None:
            field, reason = problem
            yield line, Rejection(name, line, field, f"item {number}: {reason}", _plain(entry))
            continue
        result = validated_record(record, name, line, detect_language)
        if isinstance(result, Rejection):
            result = Rejection(name, line, result.field, f"item {number}: {result.reason}",
                               result.record)  # fmt: skip
        yield line, result


def _item_lines(data: bytes) -> list[int]:
    """The line each item starts on, counted in one pass over the feed (counting from the
    start for every item made a large feed quadratic)."""
    lines: list[int] = []
    line, position = 1, 0
    for match in _ITEM_START.finditer(data):
        line += data.count(b"\n", position, match.start())
        position = match.start()
        lines.append(line)
    return lines


def _item_record(entry: Any, feed: Any) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """An article record of one feed item, or the (field, reason) it cannot be one."""
    link = str(entry.get("link", "") or "").strip()
    item_id = str(entry.get("id", "") or "") or link
    if entry.get("guidislink") and not entry.get("links") and not is_web_url(link):
        link = ""  # feedparser copied a guid that is no URL into the link: nothing was linked
    if not item_id.strip():
        return {}, ("id", "has neither a guid/id nor a link to use as its id")
    content = entry.get("content") or []
    body = str(content[0].get("value", "")) if content else ""
    lead = str(entry.get("summary", "") or "")
    if lead == body:  # feedparser copies content into summary when only one is given
        lead = ""
    record: dict[str, Any] = {
        "id": item_id.strip(),
        "title": str(entry.get("title", "") or ""),
        "lead": lead,
        "body": body,
        "url": link,
        "source": str(feed.get("title", "") or ""),
        "lang": _language(entry, feed),
    }
    categories = [str(t.get("term", "")).strip() for t in entry.get("tags") or []]
    categories = [c for c in categories if c]
    if categories:
        record["section"] = categories[0]
        record["tags"] = categories
    for key in ("published", "updated"):
        raw = entry.get(key)
        if not raw:
            continue
        moment = entry.get(f"{key}_parsed")
        if moment is None:
            return {}, ("published_at", f"{raw!r} is not a date (RFC 822 or ISO 8601)")
        year, month, day, hour, minute, second = moment[:6]
        try:
            published = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except ValueError:  # an offset carried 9999-12-31 into year 10000, or 0001 into 0
            return {}, ("published_at", f"{raw!r} is outside the years 1800-2199")
        if not EARLIEST_PUBLISHED <= published < LATEST_PUBLISHED:
            return {}, ("published_at", f"{raw!r} is outside the years 1800-2199")
        record["published_at"] = published.isoformat()
        break
    return record, None


def _language(entry: Any, feed: Any) -> str:
    for detail in ("title_detail", "summary_detail"):
        language = (entry.get(detail) or {}).get("language")
        if language:
            return str(language)
    return str(feed.get("language", "") or "")


def _plain(entry: Any) -> dict[str, str]:
    """The parts of a rejected item worth keeping in the rejects file."""
    return {k: str(entry.get(k, ""))[:2000] for k in ("id", "link", "title", "published")}


_CANONICAL = re.compile(r"<link\b[^>]*\brel=[\"']?canonical[\"']?[^>]*>", re.IGNORECASE)
_HREF = re.compile(r"\bhref=[\"']([^\"']+)[\"']", re.IGNORECASE)
_HTML_LANG = re.compile(r"<html\b[^>]*\blang=[\"']?([A-Za-z_-]+)", re.IGNORECASE)


def _meta(html: str, name: str) -> str:
    """The content of ``<meta property|name="name" content=...>`` (either attribute order)."""
    for tag in re.finditer(r"<meta\b[^>]*>", html, re.IGNORECASE):
        text = tag.group(0)
        if re.search(rf"\b(?:property|name)=[\"']{re.escape(name)}[\"']", text, re.IGNORECASE):
            found = re.search(r"\bcontent=(?:\"([^\"]*)\"|'([^']*)')", text, re.IGNORECASE)
            if found:
                return (found.group(1) or found.group(2) or "").strip()
    return ""


def _page_record(data: bytes, name: str, final_url: str, detect_language: bool) -> ReadResult:
    import trafilatura

    extracted: Any = trafilatura.bare_extraction(data, url=final_url or None, with_metadata=True)
    if extracted is None or not (extracted.text or "").strip():
        return Rejection(name, 1, "body", "no article text found in the page")
    html = data[:200_000].decode("utf-8", errors="replace")  # the head is near the top
    canonical = _CANONICAL.search(html)
    href = _HREF.search(canonical.group(0)) if canonical else None
    url = (href.group(1) if href else "") or _meta(html, "og:url") or final_url
    if not url:
        return Rejection(name, 1, "id", "the page has no <link rel=canonical> or og:url to use "
                                        "as its id, and was not fetched from a URL")  # fmt: skip
    title = extracted.title or ""
    text = extracted.text.strip()
    first, _, rest = text.partition("\n")
    if rest and first.strip() == title.strip():  # the headline repeated as the text's start
        text = rest.strip()
    lang = _HTML_LANG.search(html)
    record: dict[str, Any] = {
        "id": url,
        "title": title,
        "lead": _meta(html, "description") or extracted.description or "",
        "body": text,
        "url": url,
        "lang": lang.group(1) if lang else "",
        "published_at": _meta(html, "article:published_time") or extracted.date or "",
        "source": _meta(html, "og:site_name") or extracted.sitename or "",
        "section": _meta(html, "article:section") or next(iter(extracted.categories or []), ""),
    }
    if extracted.tags:
        record["tags"] = list(extracted.tags)
    return validated_record(record, name, 1, detect_language)
