"""The gRPC service end to end: a real server on a free port, a real index, the real model."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import grpc
import pytest
from conftest import ROOT, listening_lines, listening_port
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from recommender.batch.indexing import index_sources
from recommender.cli.main import main
from recommender.client import RecommenderClient, wait_until_serving
from recommender.config import IndexConfig, ServerConfig
from recommender.embedding import Embedder
from recommender.engine import Engine
from recommender.service.server import SERVICE_NAME, create_server
from recommender.v1 import recommender_pb2 as pb

pytestmark = pytest.mark.slow
TOKEN = "s3cret-token"
SEED = "libya-security-memoranda"


def wait_serving(channel, service="", timeout=60.0):
    wait_until_serving(channel, timeout, service)


@pytest.fixture(scope="module")
def server(sample_index, model, tmp_path_factory):
    index_dir = tmp_path_factory.mktemp("service") / "index"
    shutil.copytree(sample_index, index_dir)
    config = ServerConfig(
        index_dir=index_dir,
        address="127.0.0.1:0",
        metrics_port=0,
        auth_token=TOKEN,
        watch_interval=0.3,
    )
    engine = Engine(
        index_dir,
        embedder=Embedder(model=model),
        writable=True,
        result_cache_size=config.result_cache,
    )
    running = create_server(config, engine)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    wait_serving(channel)
    yield running
    channel.close()
    running.stop(grace=1)


@pytest.fixture
def client(server):
    with RecommenderClient(f"127.0.0.1:{server.port}") as c:
        yield c


@pytest.fixture
def writer(server):
    with RecommenderClient(f"127.0.0.1:{server.port}", token=TOKEN) as c:
        yield c


def test_health_and_reflection(server):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    wait_serving(channel, SERVICE_NAME)
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    response = next(iter(stub.ServerReflectionInfo(iter([request]))))
    names = {s.name for s in response.list_services_response.service}
    assert SERVICE_NAME in names and "grpc.health.v1.Health" in names
    channel.close()


def test_related_ranks_the_tripoli_visit_above_wuhan(client):
    response = client.related(article_id=SEED, k=90)
    ids = [r.id for r in response.results]
    assert SEED not in ids
    assert ids.index("german-fm-tripoli-visit") < ids.index("wuhan-life-returns")
    assert response.snapshot and response.results[0].title
    assert {r.id for r in response.other_languages} >= {"libya-memoranda-en"}


@pytest.mark.parametrize(
    "extra",
    [
        ["--json"],
        [],  # the plain listing too
        ["--json", "--dense-weight", "0.35", "--recency-half-life", "7", "--lang", "ar"],
        ["--json", "--no-recency", "--no-dedup", "--max-per-source", "2", "--exclude", "x"],
    ],
)
def test_the_cli_prints_local_and_server_answers_identically(server, capsys, extra):
    # before any test writes: the local engine reads the same published snapshot
    args = ["related", "--id", SEED, "-k", "8", *extra]
    assert main([*args, "--index-dir", str(server.engine.index_dir)]) == 0
    local = capsys.readouterr().out
    assert main([*args, "--server", f"127.0.0.1:{server.port}"]) == 0
    remote = capsys.readouterr().out
    assert local.strip() and remote == local


def test_errors_map_to_status_codes_naming_the_field(client):
    with pytest.raises(grpc.RpcError) as error:
        client.related(article_id="no-such-article")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as error:
        client.related(article_id=SEED, k=0)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("k:")
    with pytest.raises(grpc.RpcError) as error:
        client.related(article_id=SEED, filters=pb.Filters(published_after="last week"))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "filters.published_after" in error.value.details()


def test_writes_need_the_token(server, client):
    article = {"id": "sneaky", "title": "Not allowed"}
    with pytest.raises(grpc.RpcError) as error:
        client.upsert([article])
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with (
        RecommenderClient(f"127.0.0.1:{server.port}", token="wrong") as bad,
        pytest.raises(grpc.RpcError) as error,
    ):
        bad.delete(["wuhan-life-returns"])
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_upserted_article_is_returned_by_the_next_related_and_delete_removes_it(client, writer):
    new = {
        "id": "libya-turkey-training-new",
        "title": "تركيا تبدأ تدريب قوات ليبية بموجب مذكرة التفاهم الأمنية والعسكرية",
        "lead": "بدأ فريق عسكري تركي في طرابلس تدريب عناصر من الجيش الليبي تنفيذاً لمذكرة التفاهم.",
        "lang": "ar",
        "published_at": "2020-09-01T10:00:00+02:00",
        "source": "sample-arabic-daily",
        "section": "politics",
    }
    # the same questions asked before the writes: their cached answers must not outlive them
    before = [r.id for r in client.related(article_id=SEED, k=10).results]
    client.related(article_id=SEED, k=90)
    assert "libya-turkey-training-new" not in before
    outcome = writer.upsert([new])
    assert outcome.added == 1
    ids = [r.id for r in client.related(article_id=SEED, k=10).results]
    assert "libya-turkey-training-new" in ids
    # filtered queries see real-time writes too (they live in the index's delta tier)
    arabic = client.related(article_id=SEED, k=10, filters=pb.Filters(langs=["ar"])).results
    assert "libya-turkey-training-new" in [r.id for r in arabic]
    assert {r.lang for r in arabic} == {"ar"}
    english = client.related(article_id=SEED, k=90, filters=pb.Filters(langs=["en"])).results
    assert "libya-turkey-training-new" not in [r.id for r in english]
    assert client.get_article("libya-turkey-training-new").title == new["title"]
    assert client.related(article_id="libya-turkey-training-new", k=3).results

    assert writer.delete(["libya-turkey-training-new"]).deleted == 1
    ids = [r.id for r in client.related(article_id=SEED, k=90).results]
    assert "libya-turkey-training-new" not in ids
    with pytest.raises(grpc.RpcError) as error:
        client.get_article("libya-turkey-training-new")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_invalid_upsert_names_the_article_and_field(writer):
    with pytest.raises(grpc.RpcError) as error:
        writer.upsert([{"id": "ok", "title": "Fine"}, {"id": "x", "title": "y", "lang": "english"}])
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("articles[1].lang:")


def metric(body: str, name: str) -> float:
    lines = [line for line in body.splitlines() if line.startswith(name + " ")]
    assert lines, f"{name} missing from /metrics"
    return float(lines[0].split()[1])


def test_metrics_count_requests_and_result_cache_hits(server, client):
    client.stats()
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    body = urllib.request.urlopen(url).read().decode()
    assert 'recommender_requests_total{code="OK",method="Stats"}' in body
    assert "recommender_request_seconds_bucket" in body and "recommender_index_articles" in body
    assert metric(body, "recommender_lists_pending") >= 0
    assert client.stats().list_depth == 30  # Related by id is answered from stored lists
    hits = metric(body, "recommender_result_cache_hits_total")
    # deeper than a stored list: ranked live, then answered from the result cache
    first = client.related(article_id="qatar-mediation-ar", k=40)
    again = client.related(article_id="qatar-mediation-ar", k=40)
    assert [r.id for r in again.results] == [r.id for r in first.results]
    body = urllib.request.urlopen(url).read().decode()
    assert metric(body, "recommender_result_cache_hits_total") == hits + 1


def test_new_snapshot_is_picked_up_without_restart_and_keeps_real_time_writes(
    server, client, writer, model, tmp_path
):
    before = client.stats().snapshot
    writer.upsert([{"id": "written-live", "title": "Malta and Libya sign a new migration deal"}])
    oil_query = {"article_id": "libya-oil-ports-en", "k": 90}

    def listed() -> set[str]:
        response = client.related(**oil_query)
        return {r.id for r in [*response.results, *response.other_languages]}

    assert "batch-new" not in listed()  # asked (and cached) before the reindex
    source = tmp_path / "batch.jsonl"
    source.write_text(
        json.dumps({"id": "batch-new", "title": "Libya reopens its oil ports", "lang": "en"}) + "\n"
    )
    index_sources(
        IndexConfig(index_dir=server.engine.index_dir, progress=False),
        [str(source)],
        Embedder(model=model),
    )
    deadline = time.monotonic() + 30
    while client.stats().snapshot == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.stats().snapshot != before
    assert client.get_article("batch-new").title == "Libya reopens its oil ports"
    assert client.get_article("written-live").title.startswith("Malta")
    # an answer cached before the new snapshot is not served after it
    assert "batch-new" in listed()


def test_serve_command_shuts_down_gracefully_on_sigterm(sample_index, tmp_path):
    index_dir = tmp_path / "index"
    shutil.copytree(sample_index, index_dir)
    process = subprocess.Popen(
        [sys.executable, "-m", "recommender", "serve", "--index-dir", str(index_dir),
         "--address", "127.0.0.1:0", "--metrics-port", "-1"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        (line,) = listening_lines(process)
        port = listening_port(line)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        wait_serving(channel)
        channel.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_a_node_js_client_calls_related_with_only_the_proto(server):
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("Node.js and npm are not installed")
    folder = ROOT / "examples" / "node"
    if not (folder / "node_modules" / "@grpc" / "grpc-js").is_dir():
        install = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund"],
            cwd=folder, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if install.returncode != 0 and any(
            code in install.stderr for code in ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED")
        ):
            pytest.skip("the npm registry cannot be reached")
        assert install.returncode == 0, install.stderr
    out = subprocess.run(
        [node, "related.js", f"127.0.0.1:{server.port}", SEED, "90"],
        cwd=folder, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    response = json.loads(out.stdout)
    ids = [r["id"] for r in response["results"]]
    assert ids.index("german-fm-tripoli-visit") < ids.index("wuhan-life-returns")
    # the enum arrives by name: dated stories carry their relation in time, and the stories
    # earlier tests wrote without a date (Libya-related, so near the top) carry none
    relations = {r["id"]: r["relation"] for r in response["results"]}
    assert relations["german-fm-tripoli-visit"] == "BACKGROUND"
    assert all(
        r["relation"] in ("FOLLOW_UP", "BACKGROUND", "SAME_TIME")
        if r["published_at"]
        else r["relation"] == "RELATION_UNSPECIFIED"
        for r in response["results"]
    )


def test_tls_and_auth_reads(sample_index, model, tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    index_dir = tmp_path / "index"
    shutil.copytree(sample_index, index_dir)
    config = ServerConfig(
        index_dir=index_dir,
        address="127.0.0.1:0",
        metrics_port=None,
        auth_token=TOKEN,
        auth_reads=True,
        tls_cert=cert,
        tls_key=key,
    )
    running = create_server(
        config, Engine(index_dir, embedder=Embedder(model=model), writable=True)
    )
    try:
        address = f"localhost:{running.port}"
        with RecommenderClient(address, token=TOKEN, root_certificates=cert.read_bytes()) as c:
            deadline = time.monotonic() + 60
            while True:
                try:
                    assert c.related(article_id=SEED, k=3).results
                    break
                except grpc.RpcError as error:
                    if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        with (
            RecommenderClient(address, root_certificates=cert.read_bytes()) as anonymous,
            pytest.raises(grpc.RpcError) as error,
        ):
            anonymous.related(article_id=SEED, k=3)
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with RecommenderClient(address) as plaintext, pytest.raises(grpc.RpcError):
            plaintext.stats()  # a plaintext client cannot talk to a TLS server
    finally:
        running.stop(grace=1)


def test_an_expired_deadline_is_reported(client):
    # gRPC rounds deadlines up to whole milliseconds, and an article-id answer can come from the
    # result cache well inside one: a raw text has to be embedded first, which takes longer.
    text = "Libya signs security and military memoranda with Turkey, Qatar and Malta. " * 30
    with pytest.raises(grpc.RpcError) as error:
        client.stub.Related(pb.RelatedRequest(text=text, k=10), timeout=0.000001)
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_cli_related_against_the_server_passes_ranking_options(server, capsys):
    from recommender.cli.main import main

    def top(*extra):
        address = f"127.0.0.1:{server.port}"
        assert (
            main(["related", "--server", address, "--id", SEED, "-k", "5", "--json", *extra]) == 0
        )
        return [r["id"] for r in json.loads(capsys.readouterr().out)["results"]]

    assert top() != top("--no-recency")  # recency decides the order of the seed's list
    assert top("--no-recency") == [
        r.id
        for r in RecommenderClient(f"127.0.0.1:{server.port}")
        .related(article_id=SEED, k=5, options=pb.RankingOptions(no_recency=True))
        .results
    ]
