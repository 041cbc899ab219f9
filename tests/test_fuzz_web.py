"""Bounded fuzz runs of the HTTP API and of the feed and page readers (issue 25): generated
requests get a JSON answer below 500 (503 only before an index exists) and log no traceback;
generated feeds and pages give articles or rejections, never an exception. A real server on a
real port over the sample corpus."""

from __future__ import annotations

import http.client
import json
import logging
import shutil
import time
import urllib.parse
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.config import ServerConfig
from recommender.embedding import Embedder
from recommender.engine import Engine
from recommender.ingest.readers import read_many
from recommender.ingest.records import Article, Duplicate, Rejection
from recommender.service.server import create_server

pytestmark = pytest.mark.slow
TOKEN = "fuzz-s3cret"
IDS = ["libya-security-memoranda", "a/b", "..", "%2F", "x\ny", "", "🙂", "a" * 600]
PATHS = [
    "/v1/articles/{id}/related", "/v1/articles/{id}", "/v1/articles", "/v1/related",
    "/v1/recommend", "/v1/stats", "/healthz", "/{id}", "/v1/articles/{id}/related/x",
]  # fmt: skip
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
FIELDS = ["k", "article_id", "text", "filters", "options", "history_ids", "articles", "ids",
          "positive_ids", "negative_ids", "lang", "published_after"]  # fmt: skip


@pytest.fixture(scope="module")
def server(sample_index, model, tmp_path_factory):
    index_dir = tmp_path_factory.mktemp("fuzz") / "index"
    shutil.copytree(sample_index, index_dir)
    config = ServerConfig(index_dir=index_dir, address="127.0.0.1:0", metrics_port=None,
                          http_port=0, auth_token=TOKEN, write_rate=0)  # fmt: skip
    running = create_server(config, Engine(index_dir, embedder=Embedder(model=model),
                                           writable=True))  # fmt: skip
    deadline = time.monotonic() + 60
    while not running.engine.ready:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    yield running.http_port
    running.stop(grace=0)


def send(port: int, method: str, path: str, body: bytes, headers: dict[str, str]) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=body or None, headers=headers)
        answer = connection.getresponse()
        raw = answer.read()
        if answer.status != 204 and method != "HEAD":
            assert "json" in (answer.getheader("content-type") or ""), (answer.status, raw[:200])
            json.loads(raw)
        return answer.status
    finally:
        connection.close()


PARAMS = st.sampled_from([*FIELDS, "section", "filters.langs", "options.no_recency"])
QUERIES = st.lists(st.tuples(PARAMS, st.text(max_size=20)), max_size=4)
OBJECTS = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), JSON, max_size=4)
BODIES = st.binary(max_size=200) | OBJECTS.map(lambda d: json.dumps(d).encode())


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    method=st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH"]),
    template=st.sampled_from(PATHS),
    article_id=st.sampled_from(IDS) | st.text(max_size=30),
    query=QUERIES,
    body=BODIES,
    token=st.booleans(),
)
def test_generated_http_requests_get_json_answers_below_500(
    server, caplog, method, template, article_id, query, body, token
):
    caplog.set_level(logging.WARNING)
    path = template.replace("{id}", urllib.parse.quote(article_id, safe=""))
    if query:
        path += "?" + urllib.parse.urlencode(query)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {TOKEN}"
    status = send(server, method, path, body, headers)
    assert status < 500, (method, path, body[:200], status)
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info]
    assert not tracebacks, tracebacks[:3]


ODD_DATES = [
    "Tue, 25 Aug 2020 10:00:00 GMT", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00",
    "Mon, 01 Jan 0001 00:00:00 +1400", "2020-13-45", "", "yesterday",
]  # fmt: skip
DATES = st.sampled_from(ODD_DATES) | st.text(max_size=30)
TEXT = st.text(max_size=60)
ITEMS = st.lists(st.tuples(TEXT, TEXT, DATES, TEXT, st.sampled_from(["", "raw"])), max_size=6)
PAGES = st.binary(max_size=600) | st.text(max_size=400).map(lambda t: t.encode("utf-8", "replace"))


def xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    items=ITEMS,
    header=st.sampled_from(['<?xml version="1.0"?>', "", "<!DOCTYPE x [<!ENTITY a 'b'>]>"]),
)
def test_generated_feeds_give_articles_or_rejections(tmp_path_factory, items, header):
    parts = []
    for title, link, date, guid, raw in items:
        if raw:  # unescaped: broken markup the reader must survive
            parts.append(f"<item><title>{title}</title><link>{link}</link></item>")
        else:
            fields = f"<title>{xml(title)}</title><link>{xml(link)}</link>"
            fields += f"<pubDate>{xml(date)}</pubDate><guid>{xml(guid)}</guid>"
            parts.append(f"<item>{fields}</item>")
    feed = f'{header}<rss version="2.0"><channel><title>F</title>{"".join(parts)}</channel></rss>'
    path = tmp_path_factory.mktemp("feed") / "fuzz.rss"
    path.write_text(feed, encoding="utf-8", errors="surrogatepass")
    for result in read_many([str(path)]):
        assert isinstance(result, Article | Rejection | Duplicate)  # a guid given twice
        if isinstance(result, Article):
            assert not result.url or result.url.lower().startswith(("http://", "https://"))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    page=st.binary(max_size=600) | st.text(max_size=400).map(lambda t: t.encode("utf-8", "replace"))
)
def test_generated_pages_give_an_article_or_a_rejection(tmp_path_factory, page):
    path: Path = tmp_path_factory.mktemp("page") / "fuzz.html"
    head = b"<html><head><link rel=canonical href='https://x.example/p'></head><body><article>"
    path.write_bytes(head + page + b"</article></body></html>")
    (result,) = list(read_many([str(path)]))
    assert isinstance(result, Article | Rejection)
