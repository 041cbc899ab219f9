"""Indexes of multilingual-e5-small and of its fusion with USE, end to end: the CLI builds
them, the engine and the gRPC service answer from them, writes and text queries work, and the
ranking defaults are the model's."""

from __future__ import annotations

import json
import shutil

import grpc
import numpy as np
import pytest
from conftest import SAMPLE

from recommender.cli.main import main
from recommender.client import wait_until_serving
from recommender.config import ServerConfig
from recommender.embedding.profiles import DEFAULT_MODEL, E5, USE, default_options, profile_for
from recommender.engine import Engine
from recommender.ranking import RankingOptions
from recommender.service.server import create_server
from recommender.v1 import recommender_pb2 as pb
from recommender.v1 import recommender_pb2_grpc as pb_grpc

pytestmark = pytest.mark.slow
FUSION = f"{USE}+{E5}"
SEED = "libya-security-memoranda"
TRIPOLI = "german-fm-tripoli-visit"
WUHAN = "wuhan-life-returns"


def _index(tmp_path_factory, model_name: str):
    index_dir = tmp_path_factory.mktemp("fused") / "index"
    args = ["index", str(SAMPLE), "--index-dir", str(index_dir), "--model", model_name]
    assert main([*args, "--quiet"]) == 0
    return index_dir


@pytest.fixture(scope="module")
def fused_index(tmp_path_factory):
    return _index(tmp_path_factory, FUSION)


@pytest.fixture(scope="module")
def e5_index(tmp_path_factory):
    return _index(tmp_path_factory, E5)


def _ids(response) -> list[str]:
    return [item.id for item in response.results]


def test_a_fused_index_holds_both_models_vectors_weighted(fused_index):
    engine = Engine(fused_index).load()
    try:
        manifest = engine.snapshot.manifest
        assert manifest.model_name == FUSION
        assert manifest.dimension == 512 + 384
        assert manifest.model.startswith(f"{USE}@") and f"+{E5}@" in manifest.model
        vectors = engine.space.vectors.vectors([int(k) for k in engine.space.int_ids[:5]])
        # each part is a unit vector scaled by sqrt(its weight): the fused vector is a unit
        weights = profile_for(FUSION).weights
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(
            np.linalg.norm(vectors[:, :512], axis=1) ** 2, weights[0], atol=1e-5
        )
    finally:
        engine.close()


def test_reindexing_a_fused_index_embeds_nothing(fused_index, capsys):
    capsys.readouterr()
    assert main(["index", str(SAMPLE), "--index-dir", str(fused_index), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["embedded"] == 0 and summary["articles"] == 91


@pytest.mark.parametrize("which", ["fused", "e5"])
def test_seed_case_under_the_new_models(which, fused_index, e5_index):
    engine = Engine(fused_index if which == "fused" else e5_index).load()
    try:
        ids = [r.id for r in engine.related(article_id=SEED, k=10).results]
        assert TRIPOLI in ids[:3], ids
        assert WUHAN not in ids[:3]
        if WUHAN in ids:
            assert ids.index(TRIPOLI) < ids.index(WUHAN)
        # the same story in other languages is found
        other = engine.related(article_id=SEED, k=5).other_languages
        assert {r.article.lang for r in other} >= {"en"}
    finally:
        engine.close()


def test_ranking_defaults_are_the_models(fused_index, e5_index, sample_index):
    assert default_options(USE) == RankingOptions()  # the measured USE defaults, unchanged
    for index_dir, name in ((fused_index, FUSION), (e5_index, E5), (sample_index, DEFAULT_MODEL)):
        engine = Engine(index_dir).load()
        try:
            assert engine.default_options == default_options(name)
        finally:
            engine.close()
    e5 = profile_for(E5)
    assert (e5.dedup_threshold, e5.same_story_threshold) != (0.9, 0.5)


def test_the_service_answers_writes_and_text_queries_on_a_fused_index(fused_index, tmp_path):
    index_dir = tmp_path / "index"
    shutil.copytree(fused_index, index_dir)
    config = ServerConfig(index_dir=index_dir, address="127.0.0.1:0", metrics_port=None)
    engine = Engine(index_dir, writable=True)
    running = create_server(config, engine)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            wait_until_serving(channel, 120)
            stub = pb_grpc.RecommenderStub(channel)
            stats = stub.Stats(pb.StatsRequest(), timeout=60)
            assert stats.model == engine.snapshot.manifest.model and stats.dimension == 896
            related = stub.Related(pb.RelatedRequest(article_id=SEED, k=5), timeout=60)
            assert TRIPOLI in _ids(related)[:3]
            story = pb.Article(
                id="libya-malta-migration-deal",
                lang="en",
                title="Malta and Libya agree to fight illegal migration together",
                body="Malta signed a memorandum with the Libyan government in Tripoli on "
                "coordinating against migrant smuggling across the Mediterranean.",
                published_at="2020-08-19T09:00:00+00:00",
            )
            stub.Upsert(pb.UpsertRequest(articles=[story]), timeout=120)
            text = stub.Related(
                pb.RelatedRequest(text="Libya and Malta sign a migration memorandum", k=5),
                timeout=120,
            )
            assert "libya-malta-migration-deal" in _ids(text)
            # options given in part keep the model's other settings
            partial = stub.Related(
                pb.RelatedRequest(
                    article_id=SEED, k=5, options=pb.RankingOptions(dense_weight=0.5)
                ),
                timeout=60,
            )
            assert len(partial.results) == 5
    finally:
        running.stop(grace=1)
        engine.close()
