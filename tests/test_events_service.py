"""Reader events over gRPC and HTTP (issue 26, events in): recorded without a token, counted
in Stats, refused with the field named when malformed, 413 when huge, 429 when flooding, and
the server keeps answering page views. A real server on real ports."""

from __future__ import annotations

import json
import shutil
import urllib.request

import grpc
import pytest
from test_http import call, wait_healthy

from recommender.client import RecommenderClient
from recommender.config import ServerConfig
from recommender.embedding import Embedder
from recommender.engine import Engine
from recommender.service.server import create_server

pytestmark = pytest.mark.slow
TOKEN = "events-s3cret"
ORIGIN = "https://news.example"
SEED = "libya-security-memoranda"
SHOWN = {"kind": "impression", "reader": "cookie-1", "source": SEED, "ids": ["a", "b", "c"]}
CLICK = {"kind": "click", "reader": "cookie-1", "source": SEED, "target": "b", "position": 1}


@pytest.fixture(scope="module")
def server(sample_index, model, tmp_path_factory):
    index_dir = tmp_path_factory.mktemp("events") / "index"
    shutil.copytree(sample_index, index_dir)
    config = ServerConfig(index_dir=index_dir, address="127.0.0.1:0", metrics_port=None,
                          auth_token=TOKEN, http_port=0, cors_origins=(ORIGIN,),
                          event_rate=5, event_burst=40)  # fmt: skip
    running = create_server(config, Engine(index_dir, embedder=Embedder(model=model),
                                            writable=True))  # fmt: skip
    base = f"http://127.0.0.1:{running.http_port}"
    wait_healthy(base)
    yield running, base
    running.stop(grace=1)


def test_events_are_recorded_over_grpc_and_http_without_a_token(server):
    running, base = server
    with RecommenderClient(f"127.0.0.1:{running.port}") as client:  # no token
        before = dict(client.stats().events)
        assert client.record_events([SHOWN, CLICK]) == 2
        # what navigator.sendBeacon sends from a page: text/plain, no preflight, no token
        body = json.dumps({"events": [SHOWN, CLICK, {"kind": "read", "reader": "cookie-1",
                                                     "target": "b"}]}).encode()  # fmt: skip
        got, answer, headers = call(base, "/v1/events", "POST", body,
                                    headers={"Content-Type": "text/plain;charset=UTF-8",
                                             "Origin": ORIGIN})  # fmt: skip
        assert got == 200 and answer == {"recorded": 3}
        assert headers["access-control-allow-origin"] == ORIGIN
        after = dict(client.stats().events)
    assert after["impression"] - before.get("impression", 0) == 2
    assert after["click"] - before.get("click", 0) == 2
    assert after["read"] - before.get("read", 0) == 1
    got, stats, _ = call(base, "/v1/stats", headers={"authorization": f"Bearer {TOKEN}"})
    assert stats["events"]["click"] == str(after["click"])  # int64 as JSON strings


def test_malformed_events_are_refused_naming_the_field(server):
    running, base = server
    bad_click = {**CLICK, "position": 500}
    got, answer, _ = call(base, "/v1/events", "POST", {"events": [SHOWN, bad_click]})
    assert got == 400 and answer["error"]["status"] == "INVALID_ARGUMENT"
    assert "events[1].position" in answer["error"]["message"]
    got, answer, _ = call(base, "/v1/events", "POST", {"events": [{**SHOWN, "ids": []}]})
    assert got == 400 and "events[0].ids" in answer["error"]["message"]
    got, answer, _ = call(base, "/v1/events", "POST", {"events": [], "extra": 1})
    assert got == 400
    got, answer, _ = call(base, "/v1/events", "POST", b"\xff\xfe not json")
    assert got == 400 and "body" in answer["error"]["message"]
    with RecommenderClient(f"127.0.0.1:{running.port}") as client:
        with pytest.raises(grpc.RpcError) as raised:
            client.record_events([{**CLICK, "reader": ""}])
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "events[0].reader" in (raised.value.details() or "")
        with pytest.raises(grpc.RpcError) as raised:
            client.record_events([SHOWN] * 501)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_huge_bodies_and_floods_are_refused_and_page_views_go_on(server):
    running, base = server
    huge = json.dumps({"events": [SHOWN] * 3000}).encode()  # ~300 KB: no browser sends this
    got, answer, _ = call(base, "/v1/events", "POST", huge)
    assert got == 413
    refused = 0
    for _ in range(120):  # 5 calls a second after a burst of 40, from one address
        got, answer, _ = call(base, "/v1/events", "POST", {"events": [SHOWN]})
        if got == 429:
            refused += 1
            assert "too many events" in answer["error"]["message"]
    assert refused > 40
    with urllib.request.urlopen(f"{base}/v1/articles/{SEED}/related?k=3", timeout=10) as page:
        assert page.status == 200 and len(json.loads(page.read())["results"]) == 3
    # writes have their own bucket: the event flood did not use it up
    with RecommenderClient(f"127.0.0.1:{running.port}", token=TOKEN) as client:
        assert client.upsert([{"id": "after-flood", "title": "Tripoli port reopens"}]).added == 1


def test_a_read_only_server_refuses_events_with_a_reason(sample_index, model, tmp_path):
    index_dir = tmp_path / "index"
    shutil.copytree(sample_index, index_dir)
    config = ServerConfig(index_dir=index_dir, address="127.0.0.1:0", metrics_port=None)
    running = create_server(config, Engine(index_dir, embedder=Embedder(model=model)))
    try:
        with RecommenderClient(f"127.0.0.1:{running.port}") as client:
            client.wait_until_serving(60)
            with pytest.raises(grpc.RpcError) as raised:
                client.record_events([SHOWN])
            assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "read-only" in (raised.value.details() or "")
            assert dict(client.stats().events) == {}
    finally:
        running.stop(grace=0)


def test_recommend_takes_a_reader_key_until_the_reader_is_forgotten(server):
    running, base = server
    reads = [{"kind": "read", "reader": "cookie-2", "target": article}
             for article in ("libya-ceasefire-fr", "libya-oil-ports-en")]  # fmt: skip
    assert call(base, "/v1/events", "POST", {"events": reads})[0] == 200
    with RecommenderClient(f"127.0.0.1:{running.port}") as client:
        by_reader = client.recommend(reader="cookie-2", k=5)
        by_ids = client.recommend(["libya-ceasefire-fr", "libya-oil-ports-en"], k=5)
        assert [r.id for r in by_reader.results] == [r.id for r in by_ids.results]
        assert not {"libya-ceasefire-fr", "libya-oil-ports-en"} & {r.id for r in by_reader.results}
        assert running.engine.events.forget("cookie-2") == 2
        with pytest.raises(grpc.RpcError) as raised:
            client.recommend(reader="cookie-2", k=5)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_candidate_set_is_ranked_whole_and_nothing_else(server):
    _, base = server
    chosen = ["wuhan-life-returns", "german-fm-tripoli-visit", "eu-summit-de",
              "libya-elections-en", "not-indexed-at-all", SEED]  # fmt: skip
    query = "&".join(f"id={c}" for c in chosen)
    got, answer, _ = call(
        base,
        f"/v1/articles/{SEED}/related?k=10&{query}"
        "&options.no_dedup=true&options.no_other_languages=true",
    )
    assert got == 200
    ids = [r["id"] for r in answer["results"]]
    assert sorted(ids) == sorted(chosen[:4])  # all of them; never the query nor unknown ids
    assert ids.index("german-fm-tripoli-visit") < ids.index("wuhan-life-returns")
    scores = [r["score"] for r in answer["results"]]
    assert scores == sorted(scores, reverse=True)
