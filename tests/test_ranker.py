"""The click ranker and its judge (issue 26, items 4-6): on simulated readers the ranker fit on
earlier impressions beats content alone and popularity alone, and the gain disappears when
clicks are random; MIND's metrics; ``eval clicks`` on a hand-written MIND sample; a saved
ranker re-orders ``Recommend`` as behaviour says."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
from conftest import SAMPLE

from recommender.cli.main import main
from recommender.engine import Engine
from recommender.evaluation.clicks import auc, evaluate_clicks, mrr, ndcg
from recommender.evaluation.simulator import Simulation, simulate
from recommender.events.imports import import_events
from recommender.events.log import EventLog
from recommender.events.ranker import latest_ranker
from recommender.events.records import event_from_fields

MIND_SAMPLE = SAMPLE.parent.parent / "tests" / "data" / "mind-sample"


def test_metrics_are_minds():
    labels = np.array([1.0, 0.0, 0.0, 1.0])
    assert auc(labels, np.array([0.9, 0.5, 0.1, 0.8])) == 1.0
    assert auc(labels, np.array([0.1, 0.5, 0.9, 0.2])) == 0.0
    assert auc(labels, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    # clicked at ranks 1 and 3: (1/1 + 1/3) / 2; nDCG@2: (1) / (1 + 1/log2(3))
    scores = np.array([0.9, 0.8, 0.1, 0.7])
    assert mrr(labels, scores) == pytest.approx((1 + 1 / 3) / 2)
    assert ndcg(labels, scores, 2) == pytest.approx(1 / (1 + 1 / np.log2(3)))
    assert ndcg(labels, scores, 10) == pytest.approx((1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3)))


def _simulated(tmp_path, random_clicks: bool) -> EventLog:
    articles = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    _, behaviors = simulate(articles, Simulation(random_clicks=random_clicks, seed=3))
    path = tmp_path / "behaviors.tsv"
    path.write_text(behaviors, encoding="utf-8")
    log = EventLog(tmp_path / "log")
    log.set_retention(0)
    stored, rejections = import_events(log, path)
    assert stored > 2000 and not rejections
    return log


@pytest.fixture(scope="module")
def engine(sample_index):
    engine = Engine(sample_index).load()
    yield engine
    engine.close()


def test_on_simulated_readers_the_ranker_beats_content_and_popularity(engine, tmp_path):
    result = evaluate_clicks(engine.space, _simulated(tmp_path, False).events(),
                             engine.default_options)  # fmt: skip
    methods = result["methods"]
    print(json.dumps(result))
    assert result["impressions"] > 50
    for metric in ("auc", "ndcg10"):
        assert methods["ranker"][metric] > methods["content"][metric] + 0.03, metric
        assert methods["ranker"][metric] > methods["popularity"][metric] + 0.03, metric
    assert methods["content"]["auc"] > methods["random"]["auc"] + 0.05
    assert methods["popularity"]["auc"] > methods["random"]["auc"] + 0.03
    assert result["ranker"]["position"] < 0  # position bias learnt (and fixed when scoring)


def test_with_random_clicks_the_gain_disappears(engine, tmp_path):
    result = evaluate_clicks(engine.space, _simulated(tmp_path, True).events(),
                             engine.default_options)  # fmt: skip
    methods = result["methods"]
    print(json.dumps(result))
    for method in ("ranker", "content", "popularity"):
        assert abs(methods[method]["auc"] - 0.5) < 0.05, method
        assert methods[method]["auc"] < methods["random"]["auc"] + 0.05, method


def test_eval_clicks_reads_a_mind_log_and_prints_four_methods(capsys):
    code = main(["eval", "clicks", str(MIND_SAMPLE / "behaviors.tsv"),
                 str(MIND_SAMPLE / "news.tsv"), "--json"])  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["methods"]) == {"random", "popularity", "content", "ranker"}
    for scores in result["methods"].values():
        assert set(scores) == {"auc", "mrr", "ndcg5", "ndcg10"}
        assert all(0.0 <= value <= 1.0 for value in scores.values())
    assert result["news"] == 12 and result["impressions"] > 5
    # readers click their topic: the ranker knows it, and the content model finds it too
    assert result["methods"]["ranker"]["auc"] > 0.8
    assert result["methods"]["content"]["auc"] > result["methods"]["random"]["auc"]


def test_a_trained_ranker_reorders_recommend_by_behaviour(sample_index, tmp_path, capsys):
    index_dir = tmp_path / "index"
    shutil.copytree(sample_index, index_dir)
    engine = Engine(index_dir, writable=True).load()
    history = ["libya-ceasefire-fr", "libya-oil-ports-en"]
    before = [r.id for r in engine.recommend(history, k=20).results]
    favourite = before[12]  # readers keep clicking a story content ranks 13th
    now = time.time()
    shown = [
        event_from_fields(
            "impression", f"r{n}", now - 3600 + n, "home", ids=[favourite, before[0], before[1]]
        )
        for n in range(300)
    ]
    clicks = [event_from_fields("click", f"r{n}", now - 3600 + n + 0.5, "home", favourite,
                                position=0) for n in range(300)]  # fmt: skip
    engine.events.record([e for pair in zip(shown, clicks, strict=True) for e in pair])
    assert main(["train-ranker", "--index-dir", str(index_dir)]) == 0
    saved = json.loads(capsys.readouterr().out)
    assert latest_ranker(index_dir) is not None and saved["examples"] == 900
    time.sleep(0.1)
    engine.events._ranker_checked = -1e9  # look for the ranker now, not in 5 s
    after = engine.recommend(history, k=20).results
    ids = [r.id for r in after]
    assert ids.index(favourite) < 12, ids
    scores = [r.score for r in after]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    assert not set(history) & set(ids)
    engine.close()


@pytest.mark.parametrize("random_clicks", [False, True])
def test_under_articles_the_ranker_beats_content_unless_clicks_are_random(
    engine, tmp_path, random_clicks
):
    from recommender.evaluation.simulator import simulate_article_pages

    articles = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    events = simulate_article_pages(articles, Simulation(random_clicks=random_clicks, shown=5))
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(event) + "\n" for event in events), encoding="utf-8")
    log = EventLog(tmp_path / "log")
    log.set_retention(0)
    assert import_events(log, path)[1] == []
    methods = evaluate_clicks(engine.space, log.events(), engine.default_options)["methods"]
    if random_clicks:
        assert abs(methods["ranker"]["auc"] - 0.5) < 0.06
    else:
        assert methods["ranker"]["auc"] > methods["content"]["auc"] + 0.05
        assert methods["content"]["auc"] > methods["random"]["auc"]


def test_with_rerank_lists_a_stored_list_follows_the_clicks(sample_index, tmp_path, capsys):
    from recommender.engine import DEFAULT_OPTIONS, NO_FILTERS

    index_dir = tmp_path / "index"
    shutil.copytree(sample_index, index_dir)
    plain = Engine(index_dir, writable=True).load()
    seed = "libya-security-memoranda"
    stored = [r.id for r in plain.related(article_id=seed, k=30).results]
    favourite = stored[20]  # readers under the seed keep clicking its 21st link
    now = time.time()
    events = []
    for n in range(300):
        shown = [favourite, *stored[:4]]
        events.append(event_from_fields("impression", f"r{n}", now - 3600 + n, seed, ids=shown))
        events.append(event_from_fields("click", f"r{n}", now - 3600 + n + 0.5, seed, favourite,
                                        position=0))  # fmt: skip
    plain.events.record(events)
    assert main(["train-ranker", "--index-dir", str(index_dir)]) == 0
    capsys.readouterr()
    reordering = Engine(index_dir, writable=True, rerank_lists=True).load()
    reordered = reordering.related(article_id=seed, k=10).results
    ids = [r.id for r in reordered]
    assert favourite in ids and ids.index(favourite) < 5, ids
    assert set(ids) <= set(stored)  # the stored list's stories, re-ordered
    assert [r.score for r in reordered] == sorted((r.score for r in reordered), reverse=True)
    assert reordering.related_encoded(seed, 10, NO_FILTERS, DEFAULT_OPTIONS) is None
    # without the flag the stored list answers as before, bytes and all
    assert [r.id for r in plain.related(article_id=seed, k=10).results] == stored[:10]
    assert plain.related_encoded(seed, 10, NO_FILTERS, DEFAULT_OPTIONS) is not None
    plain.close()
    reordering.close()


def test_events_signals_shows_what_readers_did(sample_index, tmp_path, capsys):
    index_dir = tmp_path / "index"
    shutil.copytree(sample_index, index_dir)
    engine = Engine(index_dir, writable=True).load()
    seed, visit, wuhan = "libya-security-memoranda", "german-fm-tripoli-visit", "wuhan-life-returns"
    now = time.time()
    events = []
    for n in range(40):
        events += [
            event_from_fields("read", f"r{n}", now - 600 + n, target=seed),
            event_from_fields("impression", f"r{n}", now - 600 + n, seed, ids=[wuhan, visit]),
            event_from_fields("click", f"r{n}", now - 599 + n, seed, visit, position=1),
        ]
    engine.events.record(events)
    engine.close()
    assert main(["events", "signals", "--index-dir", str(index_dir), "--article", seed]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["events"] == {"impression": 40, "click": 40, "read": 40}
    assert report["most_clicked"][0]["id"] == visit
    assert report["most_clicked"][0]["ctr"] > report["mean_ctr"] > 0
    assert [story["id"] for story in report["read_next"]] == [visit]
