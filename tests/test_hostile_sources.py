"""Feeds, pages and URLs crafted to break the index job (issue 25): impossible dates, links
a browser would run, feeds that make line numbering quadratic, servers that drip."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recommender.errors import InvalidInputError
from recommender.ingest import fetch as fetching
from recommender.ingest.readers import read_many
from recommender.ingest.records import Article, Rejection, article_from_record


def feed(*items: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">\n'
        "<title>Hostile Desk</title>\n" + "".join(items) + "</feed>\n"
    )


def entry(entry_id: str, *, updated: str = "2020-08-25T10:00:00Z", link: str = "") -> str:
    href = f'<link href="{link}"/>' if link else ""
    return (
        f"<entry>\n<id>{entry_id}</id>\n<title>Talks on {entry_id} resume in Tripoli</title>\n"
        f"<updated>{updated}</updated>\n{href}\n</entry>\n"
    )


def read(path: Path) -> list[Article | Rejection]:
    return list(read_many([str(path)]))


@pytest.mark.parametrize(
    "date",
    [
        "9999-12-31T23:59:59-14:00",  # year 10000 in UTC
        "0001-01-01T00:00:00+14:00",  # year 0 in UTC
        "Mon, 01 Jan 0001 00:00:00 +1400",  # was stored as 1400-01-01
        "2999-01-01T00:00:00Z",
    ],
)
def test_an_impossible_feed_date_rejects_its_item_and_the_others_land(tmp_path, date):
    path = tmp_path / "dates.atom"
    path.write_text(feed(entry("good-1"), entry("bad", updated=date), entry("good-2")))
    results = read(path)
    assert [r.id for r in results if isinstance(r, Article)] == ["good-1", "good-2"]
    (rejected,) = [r for r in results if isinstance(r, Rejection)]
    assert rejected.field == "published_at" and rejected.line == 10
    assert "1800-2199" in rejected.reason and "item 2" in rejected.reason


@pytest.mark.parametrize("date", ["9999-12-31T23:59:59-14:00", "0001-01-01", "2200-01-01"])
def test_a_record_dated_outside_the_years_of_news_names_the_field(date):
    with pytest.raises(InvalidInputError, match="1800-2199") as refused:
        article_from_record({"id": "a", "title": "t", "published_at": date})
    assert refused.value.field == "published_at"
    assert article_from_record({"id": "a", "title": "t", "published_at": "1851-09-18"})


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(document.domain)",
        " JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "//evil.example/x",
        "/relative/path",
        "https://",
    ],
)
def test_only_http_urls_are_stored(tmp_path, url):
    with pytest.raises(InvalidInputError, match="not an http") as refused:
        article_from_record({"id": "a", "title": "t", "url": url})
    assert refused.value.field == "url"
    path = tmp_path / "links.atom"
    path.write_text(feed(entry("ok", link="https://news.example.org/ok"), entry("x", link=url)))
    results = read(path)
    assert [r.url for r in results if isinstance(r, Article)] == ["https://news.example.org/ok"]
    assert [r.field for r in results if isinstance(r, Rejection)] == ["url"]


@pytest.mark.slow  # seconds: parses 2 MB twice
def test_feed_line_numbers_are_counted_in_one_pass(tmp_path):
    """2 MB of items: numbering them must cost about what parsing does, not 40 times more
    (a ratio between two steps of the same run, not a timing)."""
    import feedparser

    items = "".join(f"<entry><id>e{n}</id></entry>\n" for n in range(60_000))
    path = tmp_path / "big.atom"
    path.write_text(feed(items), encoding="utf-8")
    data = path.read_bytes()
    started = time.perf_counter()
    feedparser.parse(data)
    parsing = time.perf_counter() - started
    started = time.perf_counter()
    results = read(path)
    reading = time.perf_counter() - started
    assert len(results) == 60_000
    assert [r.line for r in results[:3]] == [4, 5, 6] and results[-1].line == 60_003
    assert reading < 4 * parsing, f"reading took {reading:.1f} s, parsing {parsing:.1f} s"


def test_a_local_source_past_the_size_limit_is_refused_not_read(tmp_path, monkeypatch):
    from recommender.ingest import websources

    monkeypatch.setattr(websources, "MAX_FETCH_BYTES", 1000)
    monkeypatch.setattr(fetching, "MAX_FETCH_BYTES", 1000)
    path = tmp_path / "huge.atom"
    path.write_text(feed(*(entry(f"e{n}") for n in range(50))))
    (rejected,) = read(path)
    assert isinstance(rejected, Rejection) and "larger than 1,000 bytes" in rejected.reason


class Dripping(http.server.BaseHTTPRequestHandler):
    """A byte every 0.2 s, for ever: in the body, or already in the status line."""

    in_headers = False

    def do_GET(self) -> None:
        try:
            if self.in_headers:
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.2)
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.end_headers()
            while True:
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            return  # the client gave up

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def dripping_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Dripping)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.slow  # waits for the deadline
@pytest.mark.parametrize("in_headers", [False, True], ids=["body", "headers"])
def test_a_url_that_drips_is_cut_off_at_the_fetch_deadline(
    dripping_server, monkeypatch, in_headers
):
    monkeypatch.setattr(Dripping, "in_headers", in_headers)
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(fetching.fetch(dripping_server + "/feed.rss", "test", deadline_s=2))
        except OSError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=60)  # each byte restarts the 30 s read timeout: only a deadline ends it
    assert outcome, "the fetch was still running after 60 s"
    (error,) = outcome
    assert isinstance(error, OSError) and "not fetched within 2 s" in str(error)


def test_a_feed_guid_that_names_a_stored_article_is_reported_with_file_and_line(tmp_path, model):
    """A wire feed whose guid equals one of our ids replaces our article: the run says so
    (file, line, what was stored) and the item still wins, as a duplicate id does in one run."""
    from recommender.batch.indexing import index_sources
    from recommender.config import IndexConfig
    from recommender.embedding import Embedder
    from recommender.storage.snapshot import STORE_FILE
    from recommender.storage.store import ArticleStore

    ours = tmp_path / "ours.jsonl"
    ours.write_text(
        '{"id": "libya-1", "title": "Libya signs security memoranda with Turkey", '
        '"lang": "en", "source": "Our Desk", "url": "https://news.example/libya-1"}\n'
        '{"id": "other", "title": "Flooding closes roads in the north", "lang": "en"}\n'
    )
    wire = tmp_path / "wire.atom"
    wire.write_text(feed(entry("libya-1", link="https://wire.example/1"), entry("wire-2")))
    config = IndexConfig(index_dir=tmp_path / "idx", progress=False, list_depth=0)
    embedder = Embedder(model=model)
    assert index_sources(config, [str(ours)], embedder).replaced == 0

    summary = index_sources(config, [str(wire)], embedder)
    assert summary.replaced == 1 and summary.to_dict()["replaced"] == 1
    (note,) = summary.replaced_notes
    assert (note.id, note.file, note.line) == ("libya-1", str(wire), 4)
    assert (note.stored_source, note.stored_url) == ("Our Desk", "https://news.example/libya-1")
    assert "replaced: " + str(note) in summary.notes()
    assert f"{wire}:4" in str(note) and "the item read wins" in str(note)
    store = ArticleStore(tmp_path / "idx" / STORE_FILE, read_only=True)
    try:  # the policy: the item read wins
        stored = store.get("libya-1")
        assert stored is not None and stored.article.url == "https://wire.example/1"
    finally:
        store.close()

    # the same feed read again is a refresh; an edit of our own record is never a replacement
    assert index_sources(config, [str(wire)], embedder).replaced == 0
    assert index_sources(config, [str(ours)], embedder).replaced == 0
