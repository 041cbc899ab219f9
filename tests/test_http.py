"""HTTP/JSON beside gRPC: a real server on real ports, the same answers, documented errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from conftest import SAMPLE, listening_lines, listening_port

from recommender.client import RecommenderClient
from recommender.config import ServerConfig
from recommender.embedding import Embedder
from recommender.engine import Engine
from recommender.service.httpjson import message_json, related_json
from recommender.service.server import create_server
from recommender.v1 import recommender_pb2 as pb

pytestmark = pytest.mark.slow
TOKEN = "http-s3cret"
SEED = "libya-security-memoranda"
TRIPOLI, WUHAN = "german-fm-tripoli-visit", "wuhan-life-returns"
ORIGIN = "https://www.example-news.org"


def call(
    base: str,
    path: str,
    method: str = "GET",
    body: object = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict, dict]:
    """(status, JSON body, headers) of one HTTP request."""
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            raw, status, got = response.read(), response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        raw, status, got = error.read(), error.code, dict(error.headers)
    is_json = "json" in (got.get("content-type") or got.get("Content-Type") or "")
    parsed = json.loads(raw) if raw and is_json else {}
    return status, parsed, {k.lower(): v for k, v in got.items()}


def wait_healthy(base: str, timeout: float = 60.0) -> None:
    """Wait until the HTTP API at ``base`` answers /healthz with 200."""
    deadline = time.monotonic() + timeout
    while call(base, "/healthz")[0] != 200:
        assert time.monotonic() < deadline, "the HTTP API never became healthy"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def server(sample_index, model, tmp_path_factory):
    index_dir = tmp_path_factory.mktemp("http") / "index"
    shutil.copytree(sample_index, index_dir)
    config = ServerConfig(
        index_dir=index_dir,
        address="127.0.0.1:0",
        metrics_port=None,
        auth_token=TOKEN,
        watch_interval=0.3,
        http_port=0,
        cors_origins=(ORIGIN,),
    )
    engine = Engine(index_dir, embedder=Embedder(model=model), writable=True)
    running = create_server(config, engine)
    base = f"http://127.0.0.1:{running.http_port}"
    wait_healthy(base)
    yield running, base
    running.stop(grace=1)


@pytest.fixture(scope="module")
def grpc_client(server):
    running, _ = server
    with RecommenderClient(f"127.0.0.1:{running.port}", token=TOKEN) as client:
        yield client


def test_related_by_id_equals_the_grpc_answer_and_ranks_tripoli_above_wuhan(server, grpc_client):
    _, base = server
    status, body, headers = call(base, f"/v1/articles/{SEED}/related?k=5")
    assert status == 200 and headers["content-type"] == "application/json"
    assert body == message_json(grpc_client.related(article_id=SEED, k=5))
    ids = [item["id"] for item in body["results"]]
    assert TRIPOLI in ids[:3] and WUHAN not in ids
    first = body["results"][0]
    assert {"title", "url", "lang", "published_at", "score", "key_terms", "relation"} <= set(first)
    # filters and options from the query string (live ranking) equal gRPC's too
    query = "k=10&lang=en&lang=fr&options.no_recency=true&filters.exclude_ids=libya-memoranda-en"
    status, body, _ = call(base, f"/v1/articles/{SEED}/related?{query}")
    expected = grpc_client.related(
        article_id=SEED,
        k=10,
        filters=pb.Filters(langs=["en", "fr"], exclude_ids=["libya-memoranda-en"]),
        options=pb.RankingOptions(no_recency=True),
    )
    assert status == 200 and body == message_json(expected)
    assert body["results"] and {item["lang"] for item in body["results"]} <= {"en", "fr"}
    assert "libya-memoranda-en" not in [item["id"] for item in body["results"]]


def raw(base: str, path: str) -> bytes:
    with urllib.request.urlopen(base + path, timeout=60) as response:
        return bytes(response.read())


def previous_writer(message: pb.RelatedResponse) -> bytes:
    """How the HTTP API wrote an answer before stored lists kept JSON pieces (the same dict
    as ``message_json``, keys in field order)."""
    written = related_json(message)
    assert written == message_json(message)
    return json.dumps(written, ensure_ascii=False).encode("utf-8")


def test_page_views_are_byte_identical_to_the_protobuf_answer_written_as_json(server, grpc_client):
    running, base = server
    ids = [json.loads(line)["id"] for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    assert len(ids) == 91
    for article_id in ids:
        for k in (1, 10, 30):
            got = raw(base, f"/v1/articles/{article_id}/related?k={k}")
            assert got == previous_writer(grpc_client.related(article_id=article_id, k=k)), (
                article_id,
                k,
            )
    # the routes (a query the page-view path leaves to them) answer the same bytes and headers
    fast = urllib.request.urlopen(f"{base}/v1/articles/{SEED}/related?k=10", timeout=60)
    routed = urllib.request.urlopen(f"{base}/v1/articles/{SEED}/related?k=10&k=10", timeout=60)
    assert fast.read() == routed.read()
    assert [(k, v) for k, v in fast.getheaders() if k != "date"] == [
        (k, v) for k, v in routed.getheaders() if k != "date"
    ]
    # a list recomputed after a write answers from its new JSON pieces, identical too
    auth = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    article = {"id": "http-bytes-libya", "title": "Turkish officers start training Libyan forces",
               "lang": "en", "published_at": "2020-09-02T10:00:00+00:00"}  # fmt: skip
    before = raw(base, f"/v1/articles/{SEED}/related?k=10")
    assert call(base, "/v1/articles", "POST", {"articles": [article]}, headers=auth)[0] == 200
    assert running.engine.wait_for_lists()
    got = raw(base, f"/v1/articles/{SEED}/related?k=10")
    assert got != before  # listed or folded into its near-copy: the list was recomputed
    assert got == previous_writer(grpc_client.related(article_id=SEED, k=10))
    assert call(base, "/v1/articles/http-bytes-libya", "DELETE", headers=auth)[0] == 200
    assert running.engine.wait_for_lists()
    got = raw(base, f"/v1/articles/{SEED}/related?k=10")
    assert b"http-bytes-libya" not in got
    assert got == previous_writer(grpc_client.related(article_id=SEED, k=10))


def test_text_examples_recommend_article_and_stats_equal_grpc(server, grpc_client):
    _, base = server
    text = "Libya signs security and military agreements with Turkey and Qatar"
    status, body, _ = call(base, "/v1/related", "POST", {"text": text, "k": 4, "lang": "en"})
    assert status == 200
    assert body == message_json(grpc_client.related(text=text, k=4))
    examples = {"examples": {"positive_ids": [SEED, TRIPOLI]}, "k": 3}
    status, body, _ = call(base, "/v1/related", "POST", examples)
    assert status == 200
    assert body == message_json(grpc_client.related(positive_ids=[SEED, TRIPOLI], k=3))
    status, body, _ = call(base, "/v1/recommend", "POST", {"history_ids": [SEED], "k": 3})
    assert status == 200 and body == message_json(grpc_client.recommend([SEED], k=3))
    status, body, _ = call(base, f"/v1/articles/{SEED}")
    assert status == 200 and body == message_json(grpc_client.get_article(SEED))
    status, body, _ = call(base, "/v1/stats")
    # int64 fields are JSON strings, as the proto3 JSON mapping writes them
    assert status == 200 and body == message_json(grpc_client.stats())
    assert body["articles"] == "91" and body["dimension"] == 896


def test_errors_are_status_codes_with_messages_naming_the_field(server):
    _, base = server
    cases = [
        (f"/v1/articles/{SEED}/related?k=0", 400, "INVALID_ARGUMENT", "k: "),
        (f"/v1/articles/{SEED}/related?k=abc", 400, "INVALID_ARGUMENT", "k: 'abc' is not a number"),
        (f"/v1/articles/{SEED}/related?colour=red", 400, "INVALID_ARGUMENT", "colour: unknown"),
        (f"/v1/articles/{SEED}/related?published_after=soon", 400, "INVALID_ARGUMENT",
         "filters.published_after: "),
        ("/v1/articles/no-such-article/related", 404, "NOT_FOUND", "no-such-article"),
        ("/v1/articles/no-such-article", 404, "NOT_FOUND", "no-such-article"),
    ]  # fmt: skip
    for path, status, code, message in cases:
        got, body, _ = call(base, path)
        assert got == status, path
        assert body["error"]["status"] == code and body["error"]["code"] == status
        assert body["error"]["message"].startswith(message) or message in body["error"]["message"]
    got, body, _ = call(base, "/v1/related", "POST", b"{not json")
    assert got == 400 and body["error"]["message"].startswith("body: not JSON")
    got, body, _ = call(base, "/v1/related", "POST", {"txt": "typo"})
    assert got == 400 and "txt" in body["error"]["message"]
    huge = b'{"text": "' + b"x" * (17 * 1024 * 1024) + b'"}'
    got, body, _ = call(base, "/v1/related", "POST", huge)
    assert got == 413 and body["error"]["status"] == "RESOURCE_EXHAUSTED"
    got, body, _ = call(base, "/v1/related", "POST", {"k": 3})
    assert got == 400 and body["error"]["message"].startswith("query: set one of")
    # k may be left out over HTTP (10 results); given, it is checked as over gRPC
    assert len(call(base, f"/v1/articles/{SEED}/related")[1]["results"]) == 10


def test_writes_need_the_token_and_round_trip(server, grpc_client):
    _, base = server
    article = {
        "id": "http-libya-training",
        "title": "Turkish officers begin training Libyan forces under the new memorandum",
        "lang": "en",
        "published_at": "2020-09-01T10:00:00+00:00",
    }
    got, body, _ = call(base, "/v1/articles", "POST", {"articles": [article]})
    assert got == 401 and body["error"]["status"] == "UNAUTHENTICATED"
    wrong = {"authorization": "Bearer wrong"}
    assert call(base, "/v1/articles/http-libya-training", "DELETE", headers=wrong)[0] == 401
    auth = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    bad = {"articles": [article, {"id": "x", "title": "y", "lang": "english"}]}
    got, body, _ = call(base, "/v1/articles", "POST", bad, headers=auth)
    assert got == 400 and body["error"]["message"].startswith("articles[1].lang:")
    got, body, _ = call(base, "/v1/articles", "POST", {"articles": [article]}, headers=auth)
    assert got == 200 and body == {"added": 1, "updated": 0, "unchanged": 0}
    # written over HTTP, read over gRPC: one engine
    assert grpc_client.get_article("http-libya-training").title == article["title"]
    related = call(base, f"/v1/articles/{SEED}/related?k=10")[1]
    assert "http-libya-training" in [item["id"] for item in related["results"]]
    got, body, _ = call(base, "/v1/articles/http-libya-training", "DELETE", headers=auth)
    assert got == 200 and body == {"deleted": 1}
    got, body, _ = call(base, "/v1/articles/http-libya-training", "DELETE", headers=auth)
    assert got == 404 and "http-libya-training" in body["error"]["message"]


def test_cors_allows_only_the_configured_origins(server):
    _, base = server
    preflight = {"origin": ORIGIN, "access-control-request-method": "GET"}
    got, _, headers = call(base, "/v1/stats", "OPTIONS", headers=preflight)
    assert got == 200 and headers["access-control-allow-origin"] == ORIGIN
    _, _, headers = call(base, f"/v1/articles/{SEED}/related?k=1", headers={"origin": ORIGIN})
    assert headers["access-control-allow-origin"] == ORIGIN
    other = {"origin": "https://elsewhere.example", "access-control-request-method": "GET"}
    got, _, headers = call(base, "/v1/stats", "OPTIONS", headers=other)
    assert got == 400 and "access-control-allow-origin" not in headers


def test_without_an_index_health_and_calls_answer_503(tmp_path):
    config = ServerConfig(index_dir=tmp_path / "empty", address="127.0.0.1:0",
                          metrics_port=None, http_port=0, watch_interval=0.2)  # fmt: skip
    running = create_server(config)
    try:
        base = f"http://127.0.0.1:{running.http_port}"
        got, body, headers = call(base, "/healthz")
        assert got == 503 and body == {"status": "NOT_SERVING"}
        assert "access-control-allow-origin" not in headers  # CORS is off by default
        got, body, _ = call(base, f"/v1/articles/{SEED}/related")
        assert got == 503 and body["error"]["status"] == "UNAVAILABLE"
    finally:
        running.stop(grace=0)


def test_curl_against_the_serve_command_matches_grpc(sample_index, tmp_path):
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    index_dir = tmp_path / "index"
    shutil.copytree(sample_index, index_dir)
    process = subprocess.Popen(
        [sys.executable, "-m", "recommender", "serve", "--index-dir", str(index_dir),
         "--address", "127.0.0.1:0", "--http-port", "0", "--metrics-port", "-1",
         "--processes", "2"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        lines = listening_lines(process, count=2)
        assert all("HTTP/JSON on :" in line for line in lines)
        port = listening_port(lines[0])
        http_port = int(lines[0].split("HTTP/JSON on :")[1].split()[0].rstrip(","))
        base = f"http://127.0.0.1:{http_port}"
        deadline = time.monotonic() + 120
        while call(base, "/healthz")[0] != 200:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.2)
        with RecommenderClient(f"127.0.0.1:{port}") as client:
            client.wait_until_serving(120)
            expected = message_json(client.related(article_id=SEED, k=5))
        for _ in range(4):  # several connections: both processes answer
            out = subprocess.run(
                [curl, "-s", "--fail", f"{base}/v1/articles/{SEED}/related?k=5"],
                capture_output=True, check=True, timeout=60,
            )  # fmt: skip
            assert json.loads(out.stdout) == expected
    finally:
        process.terminate()
        process.wait(timeout=60)
