"""Hostile and malformed gRPC requests get INVALID_ARGUMENT (or RESOURCE_EXHAUSTED,
UNAUTHENTICATED, NOT_FOUND) naming what was wrong; never INTERNAL or UNKNOWN, and the server
keeps answering (issue 14, part 1). A real server on a real port over the sample corpus."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.config import ServerConfig
from recommender.embedding import Embedder
from recommender.engine import Engine
from recommender.service.server import create_server
from recommender.v1 import recommender_pb2 as pb

TOKEN = "fuzz-token"
SEED = "libya-security-memoranda"
ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
METHODS = {
    "Related": pb.RelatedRequest,
    "Recommend": pb.RecommendRequest,
    "GetArticle": pb.GetArticleRequest,
    "Upsert": pb.UpsertRequest,
    "Delete": pb.DeleteRequest,
    "Stats": pb.StatsRequest,
}
TRIED: Counter[str] = Counter()  # generated requests per test, reported at the end


@pytest.fixture(scope="module")
def server(sample_index: Path, model: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    index_dir = tmp_path_factory.mktemp("fuzz") / "index"
    shutil.copytree(sample_index, index_dir)
    config = ServerConfig(  # no write limit: the fuzzing writes hundreds a second
        index_dir=index_dir, address="127.0.0.1:0", metrics_port=None, auth_token=TOKEN,
        write_rate=0,
    )  # fmt: skip
    engine = Engine(index_dir, embedder=Embedder(model=model), writable=True)
    running = create_server(config, engine)
    deadline = time.monotonic() + 120
    while not running.engine.ready and time.monotonic() < deadline:
        time.sleep(0.1)
    yield running
    running.stop(grace=1)
    print(f"generated requests tried: {dict(TRIED)}")


@pytest.fixture(scope="module")
def channel(server: Any) -> Any:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=60)
        yield channel


def raw_call(channel: Any, method: str, payload: bytes, token: str | None = None) -> Any:
    """Call ``method`` with bytes as they are; returns (status code, details)."""
    call = channel.unary_unary(
        f"/recommender.v1.Recommender/{method}",
        request_serializer=None,
        response_deserializer=None,
    )
    metadata = [("authorization", f"Bearer {token}")] if token else None
    try:
        call(payload, timeout=60, metadata=metadata)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as error:
        return error.code(), error.details()


def still_serving(channel: Any) -> None:
    code, _ = raw_call(
        channel, "Related", pb.RelatedRequest(article_id=SEED, k=3).SerializeToString()
    )
    assert code == grpc.StatusCode.OK


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(method=st.sampled_from(sorted(METHODS)), payload=st.binary(max_size=400),
       with_token=st.booleans())  # fmt: skip
def test_random_bytes_are_refused_cleanly(
    channel: Any, method: str, payload: bytes, with_token: bool
) -> None:
    TRIED["random bytes"] += 1
    code, details = raw_call(channel, method, payload, TOKEN if with_token else None)
    assert code in ALLOWED, (method, payload, code, details)
    if code == grpc.StatusCode.INVALID_ARGUMENT and "message" in details:
        assert METHODS[method].DESCRIPTOR.name in details


def test_invalid_utf8_in_a_string_field_names_the_message(channel: Any) -> None:
    # field 1 (article_id), length 2, bytes that are not UTF-8
    code, details = raw_call(channel, "Related", b"\x0a\x02\xff\xfe")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid RelatedRequest message" in details
    still_serving(channel)


hostile_ids = st.sampled_from([
    "../../etc/passwd", "a/b\\c", "'; DROP TABLE articles; --", '"quoted"', "nul\x00byte",
    "new\nline", "x" * 10_000, "\u202eevil", "",
]) | st.text(max_size=50)  # fmt: skip
json_junk = st.sampled_from([
    "[" * 10_000 + "]" * 10_000, '{"n": ' + "9" * 5_000 + "}", '{"a": "\\ud800"}', "not json",
    "[1, 2]", '{"deleted": true}', "",
])  # fmt: skip


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    article_id=hostile_ids,
    title=st.text(max_size=100),
    lang=st.sampled_from(["", "en", "english", "xx-YY", "ar", "12"]),
    published_at=st.sampled_from(["", "2020-01-01", "9999-99-99", "yesterday", "0001-01-01"]),
    metadata=json_junk,
    k=st.integers(min_value=-(2**31), max_value=2**31 - 1),
    half_life=st.sampled_from([None, float("nan"), float("inf"), -1.0, 0.0, 30.0]),
)
def test_hostile_field_values_are_refused_cleanly(
    channel: Any,
    article_id: str,
    title: str,
    lang: str,
    published_at: str,
    metadata: str,
    k: int,
    half_life: float | None,
) -> None:
    TRIED["hostile fields"] += 1
    upsert = pb.UpsertRequest(articles=[pb.Article(
        id=article_id, title=title, lang=lang, published_at=published_at, metadata_json=metadata,
    )])  # fmt: skip
    options = pb.RankingOptions()
    if half_life is not None:
        options.recency_half_life_days = half_life
    requests = [
        ("Upsert", upsert, TOKEN),
        ("Related", pb.RelatedRequest(article_id=article_id, k=k, options=options), None),
        ("Related", pb.RelatedRequest(text=title or "x", k=10, lang=lang), None),
        ("GetArticle", pb.GetArticleRequest(id=article_id), None),
        ("Recommend", pb.RecommendRequest(history_ids=[article_id] * 3, k=5), None),
        ("Delete", pb.DeleteRequest(ids=[article_id]), TOKEN),
    ]
    for method, request, token in requests:
        code, details = raw_call(channel, method, request.SerializeToString(), token)
        assert code in ALLOWED, (method, request, code, details)
        assert len(details) < 2_000  # the echoed input is cut


def test_named_refusals(channel: Any) -> None:
    def details_of(method: str, request: Any, token: str | None = TOKEN) -> tuple[Any, str]:
        return raw_call(channel, method, request.SerializeToString(), token)

    deep = pb.Article(id="deep", title="t", metadata_json="[" * 10_000 + "]" * 10_000)
    code, details = details_of("Upsert", pb.UpsertRequest(articles=[deep]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "articles[0].metadata_json" in details
    huge = pb.Article(id="huge", title="t", metadata_json='{"n": ' + "9" * 5_000 + "}")
    code, details = details_of("Upsert", pb.UpsertRequest(articles=[huge]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "articles[0].metadata_json" in details
    options = pb.RankingOptions(recency_half_life_days=float("nan"))
    code, details = details_of("Related", pb.RelatedRequest(article_id=SEED, k=5, options=options))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "recency_half_life_days" in details
    code, details = details_of("Related", pb.RelatedRequest(text="Libya", k=5, lang="english"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("lang:")
    code, details = details_of("GetArticle", pb.GetArticleRequest(id="x" * 15_000))
    assert code == grpc.StatusCode.NOT_FOUND and len(details) < 300
    history = pb.RecommendRequest(history_ids=[f"h{n}" for n in range(100_000)], k=5)
    code, details = details_of("Recommend", history)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "history" in details
    many = pb.UpsertRequest(articles=[pb.Article(id=f"m{n}", title="t") for n in range(1_001)])
    code, details = details_of("Upsert", many)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "articles" in details
    for k in (0, -1, 101, 2**31 - 1):
        code, details = details_of("Related", pb.RelatedRequest(article_id=SEED, k=k))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("k:")
    code, details = details_of("Related", pb.RelatedRequest(
        article_id=SEED, k=5, filters=pb.Filters(published_after="10000-01-01")))  # fmt: skip
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "published_after" in details
    still_serving(channel)
