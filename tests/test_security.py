"""Nobody unauthorised, nothing oversized, nothing hostile gets through (issue 14, part 5).
Token checks and TLS are covered in test_service.py; here: write limits per client, message
size limits, and hostile ids against the store and the index directory. Real server, real port."""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from recommender.client import RecommenderClient
from recommender.config import ServerConfig
from recommender.embedding import Embedder
from recommender.engine import Engine
from recommender.service.ratelimit import WriteLimiter, client_address
from recommender.service.server import create_server
from recommender.v1 import recommender_pb2 as pb
from recommender.v1.recommender_pb2_grpc import RecommenderStub

TOKEN = "security-token"
HOSTILE_IDS = [
    "../../../../tmp/escaped", "/etc/passwd", "a\\b", "'; DROP TABLE articles; --",
    "x' OR '1'='1", '"; DELETE FROM articles; --', "nul\x00inside", "new\nline", "%s%n%x",
]  # fmt: skip


@pytest.fixture(scope="module")
def server(sample_index: Path, model: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    index_dir = tmp_path_factory.mktemp("security") / "index"
    shutil.copytree(sample_index, index_dir)
    config = ServerConfig(
        index_dir=index_dir, address="127.0.0.1:0", metrics_port=None, auth_token=TOKEN,
        write_rate=5.0, write_burst=10,
    )  # fmt: skip
    running = create_server(
        config, Engine(index_dir, embedder=Embedder(model=model), writable=True)
    )
    deadline = time.monotonic() + 120
    while not running.engine.ready and time.monotonic() < deadline:
        time.sleep(0.1)
    yield running
    running.stop(grace=1)


def test_the_token_bucket_refills_at_its_rate() -> None:
    limiter = WriteLimiter(rate=2.0, burst=3)
    peer = "ipv4:10.0.0.5:5000"
    assert [limiter.allow(peer, now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.allow(peer, now=0.0) == pytest.approx(0.5)
    assert limiter.allow("ipv4:10.0.0.5:6000", now=0.0) > 0  # same address, another port
    assert limiter.allow("ipv4:10.0.0.6:5000", now=0.0) == 0.0  # another client
    assert limiter.allow(peer, now=0.5) == 0.0  # one token back after 1 / rate
    assert client_address("ipv6:[::1]:1234") == "ipv6:[::1]"


def test_writes_beyond_the_rate_are_refused_reads_are_not(server: Any) -> None:
    codes = []
    with RecommenderClient(f"127.0.0.1:{server.port}", token=TOKEN) as writer:
        for n in range(25):
            try:
                writer.delete([f"never-there-{n}"])
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                codes.append(error.code())
                if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    assert "too many writes" in error.details() and "retry in" in error.details()
        assert codes[:10] == [grpc.StatusCode.OK] * 10  # the burst
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes[10:]
        for _ in range(30):  # reads are never limited
            writer.related(article_id="libya-security-memoranda", k=3)


def test_a_100_mb_message_is_refused_and_the_server_stays_up(server: Any) -> None:
    with grpc.insecure_channel(
        f"127.0.0.1:{server.port}", options=[("grpc.max_send_message_length", 200 << 20)]
    ) as channel:
        stub = RecommenderStub(channel)
        huge = pb.UpsertRequest(articles=[pb.Article(id="huge", title="t", body="x" * (100 << 20))])
        with pytest.raises(grpc.RpcError) as error:
            stub.Upsert(huge, metadata=[("authorization", f"Bearer {TOKEN}")], timeout=120)
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # an article under the message limit but over the article limit: a named refusal
        big = pb.UpsertRequest(articles=[pb.Article(id="big", title="t", body="x" * (3 << 20))])
        with pytest.raises(grpc.RpcError) as error:
            stub.Upsert(big, metadata=[("authorization", f"Bearer {TOKEN}")], timeout=120)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "articles[0].body" in error.value.details()
    with RecommenderClient(f"127.0.0.1:{server.port}") as client:
        assert client.related(article_id="libya-security-memoranda", k=3).results


def test_hostile_ids_are_data_never_paths_or_sql(server: Any, tmp_path: Path) -> None:
    index_dir = Path(server.engine.live.index_dir)
    before = {p for p in index_dir.parent.rglob("*")}
    with RecommenderClient(f"127.0.0.1:{server.port}", token=TOKEN) as writer:
        for article_id in HOSTILE_IDS:
            clean = article_id.replace("\x00", "")
            try:
                writer.upsert([{"id": article_id, "title": f"Story {clean}"}])
            except grpc.RpcError as error:
                assert error.code() in (
                    grpc.StatusCode.INVALID_ARGUMENT,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                )
                continue
            assert writer.get_article(article_id).id == article_id
    # nothing was written outside the index directory's own files
    created = {p for p in index_dir.parent.rglob("*")} - before
    assert all(p.is_relative_to(index_dir) and p.name.startswith(("store.", "embeddings."))
               for p in created), created  # fmt: skip
    assert not Path("/tmp/escaped").exists()
    # the store still holds every sample article (no injected statement ran)
    with sqlite3.connect(f"file:{index_dir / 'store.sqlite'}?mode=ro", uri=True) as db:
        (count,) = db.execute("SELECT count(*) FROM articles").fetchone()
    assert count >= 91


def test_tokens_are_never_logged(server: Any, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "wrong-token-0123456789"
    caplog.set_level(logging.DEBUG)
    for token in (TOKEN, wrong):
        with RecommenderClient(f"127.0.0.1:{server.port}", token=token) as writer:
            for request in ({"id": "logged?", "title": "A story"}, {"id": "", "title": ""}):
                # refused or not (wrong token, bad record, rate): no token in any log line
                with contextlib.suppress(grpc.RpcError):
                    writer.upsert([request])
    assert "refused Upsert without a valid token" in caplog.text  # the attempt is logged
    assert TOKEN not in caplog.text and wrong not in caplog.text
