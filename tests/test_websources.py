"""RSS/Atom feeds and HTML pages as sources: files and URLs, broken items rejected by line."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import ROOT

from recommender.ingest.readers import read_many
from recommender.ingest.records import Article, Rejection
from recommender.storage.store import ArticleStore

WEB = ROOT / "data" / "web"
RSS, ATOM = WEB / "world.rss", WEB / "health.atom"
PAGES = sorted((WEB / "pages").glob("*.html"))

BROKEN_RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Broken Desk</title><language>en</language>
<item>
  <title>Libyan coast guard receives new patrol boats</title>
  <link>https://broken.example.org/boats</link>
  <pubDate>Tue, 25 Aug 2020 10:00:00 GMT</pubDate>
</item>
<item>
  <title>An item whose date no reader understands</title>
  <link>https://broken.example.org/bad-date</link>
  <pubDate>the day after tomorrow</pubDate>
</item>
<item>
  <description></description>
</item>
<item>
  <title>Malta hosts talks on migration in the Mediterranean</title>
  <guid>broken-example-malta-talks</guid>
</item>
</channel></rss>
"""


def read(*paths: Path | str) -> list:
    return list(read_many([str(p) for p in paths]))


def test_rss_items_become_articles_with_the_feed_fields():
    items = read(RSS)
    assert all(isinstance(a, Article) for a in items) and len(items) == 3
    first = items[0]
    assert first.id == "world-example-malta-libya-patrols"  # the guid
    assert first.url == "https://world.example.org/2020/08/malta-libya-sea-patrols"
    assert first.lang == "en"  # <language>en-gb</language>
    assert first.source == "Sample World Desk" and first.section == "Middle East"
    assert first.published_at is not None and first.published_at.isoformat().startswith(
        "2020-08-20T09:15"
    )
    assert "coordination centre" in first.lead and "central Mediterranean" in first.body
    assert items[2].id == "https://world.example.org/2020/07/shanghai-cinemas-reopen"  # no guid


def test_atom_entries_take_the_feed_language_and_content():
    items = read(ATOM)
    assert [a.lang for a in items] == ["fr", "fr"]
    assert items[0].id == "https://sante.example.org/2020/09/essai-vaccin-allemagne"
    assert "Tübingen" in items[0].body and "volontaires" in items[0].lead
    assert items[0].published_at.isoformat() == "2020-09-01T05:30:00+00:00"


def test_html_pages_give_canonical_id_main_text_and_metadata():
    english, arabic = (next(a for a in read(p)) for p in PAGES)
    assert english.id == "https://medpost.example.org/libya/2020/08/19/libya-malta-maritime-accord"
    assert english.title == "Libya and Malta sign maritime security accord"
    assert english.lang == "en" and english.section == "Politics"
    assert english.published_at.isoformat() == "2020-08-19T11:20:00+02:00"
    assert "coordination centres" in english.body
    # navigation and footer are not the article
    assert "Sport" not in english.body and "©" not in english.body
    assert arabic.lang == "ar" and "معيتيقة" in arabic.body


def test_a_broken_item_is_rejected_with_its_line_and_the_others_land(tmp_path):
    feed = tmp_path / "broken.rss"
    feed.write_text(BROKEN_RSS, encoding="utf-8")
    results = read(feed)
    articles = [r for r in results if isinstance(r, Article)]
    rejections = [r for r in results if isinstance(r, Rejection)]
    assert [a.id for a in articles] == [
        "https://broken.example.org/boats",
        "broken-example-malta-talks",
    ]
    by_field = {r.field: r for r in rejections}
    assert set(by_field) == {"published_at", "id"}
    assert by_field["published_at"].line == 8 and "item 2" in by_field["published_at"].reason
    assert "the day after tomorrow" in by_field["published_at"].reason
    assert by_field["id"].line == 13 and "item 3" in by_field["id"].reason
    assert all(r.file == str(feed) for r in rejections)


def test_a_page_without_text_or_id_is_rejected(tmp_path):
    empty = tmp_path / "empty.html"
    empty.write_text(
        '<html><head><title>x</title><link rel="canonical" href="https://e.example.org/x">'
        "</head><body><script>var page = 1;</script></body></html>"
    )
    nameless = tmp_path / "nameless.html"
    nameless.write_text(PAGES[0].read_text(encoding="utf-8").replace("canonical", "author"))
    (first,) = read(empty)
    (second,) = read(nameless)
    assert isinstance(first, Rejection) and first.field == "body"
    assert isinstance(second, Rejection) and second.field == "id" and "canonical" in second.reason


def test_not_a_feed_is_one_rejection_naming_the_file(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<rss><channel><item><title>cut off")
    (rejection,) = read(bad)
    assert isinstance(rejection, Rejection) and rejection.file == str(bad)


def test_feeds_and_pages_are_read_from_urls(tmp_path):
    shutil.copy(RSS, tmp_path / "feed")  # no suffix: told apart by what it holds
    shutil.copy(PAGES[0], tmp_path / "page")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        feed = read(f"{base}/feed")
        page = read(f"{base}/page")
        missing = read(f"{base}/missing.rss")
    finally:
        server.shutdown()
    assert [a.id for a in feed] == [a.id for a in read(RSS)]
    assert page[0].id.endswith("libya-malta-maritime-accord")
    assert isinstance(missing[0], Rejection) and "404" in missing[0].reason


@pytest.mark.slow
def test_index_command_on_feeds_and_pages_lands_all_but_the_broken_items(tmp_path):
    broken = tmp_path / "broken.rss"
    broken.write_text(BROKEN_RSS, encoding="utf-8")
    index_dir = tmp_path / "index"
    sources = [str(RSS), str(ATOM), *map(str, PAGES), str(broken)]
    run = subprocess.run(
        [sys.executable, "-m", "recommender", "index", *sources, "--index-dir", str(index_dir),
         "--quiet", "--max-rejects", "5"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["added"] == 3 + 2 + 2 + 2 and summary["rejected"] == 2
    assert f"{broken}:8: field 'published_at'" in run.stderr
    store = ArticleStore(index_dir / "store.sqlite")
    try:
        landed = store.all_ids()
    finally:
        store.close()
    assert "broken-example-malta-talks" in landed
    assert "https://medpost.example.org/ar/libya/2020/09/mitiga-airport-reopens" in landed
    rejects = [json.loads(line) for line in Path(summary["rejects_file"]).read_text().splitlines()]
    assert {r["field"] for r in rejects} == {"published_at", "id"}
    # without --max-rejects the same run fails (exit 2), and the valid items still land
    again = subprocess.run(
        [sys.executable, "-m", "recommender", "index", str(broken), "--index-dir",
         str(tmp_path / "strict"), "--quiet"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert again.returncode == 2 and json.loads(again.stdout.strip())["added"] == 2
