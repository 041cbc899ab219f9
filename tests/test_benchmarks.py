"""The benchmark scripts run end to end on tiny inputs and write what their README promises.

No timing is asserted (these machines are shared and noisy): only that each script runs with
the real libraries, the real server and the real model, and that its JSON has the documented
shape and sane values.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLE

NGHTTP2_HEADER = "/usr/include/nghttp2/nghttp2.h"

pytestmark = pytest.mark.slow  # each test runs a benchmark script in its own process

REQUIRED_ROW_FIELDS = {
    "library", "index", "params", "recall_at_10", "p50_ms", "p99_ms", "qps_batch", "build_s",
    "memory_bytes",
}  # fmt: skip


def run(*args: str, timeout: int = 600) -> None:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_bench_ann_compares_faiss_with_its_peers_and_marks_the_default(tmp_path):
    out = tmp_path / "ann.json"
    run("benchmarks/bench_ann.py", "--quick", "--n", "3000", "--dim", "32", "--queries", "50",
        "--latency-queries", "20", "--real-index", str(tmp_path / "none"),
        "--crossover-sizes", "1000", "--out", str(out))  # fmt: skip
    payload = json.loads(out.read_text())
    assert {"cpu", "cores", "memory_bytes", "libraries"} <= set(payload["machine"])
    assert {"faiss-cpu", "hnswlib", "usearch"} <= set(payload["machine"]["libraries"])
    rows = payload["rows"]
    assert all(set(row) >= REQUIRED_ROW_FIELDS for row in rows)
    libraries = {row["library"] for row in rows}
    assert {"faiss", "hnswlib", "usearch", "scikit-learn", "recommender (faiss)"} <= libraries
    exact = [r for r in rows if r["library"] == "faiss" and r["index"] == "Flat"]
    assert exact and exact[0]["recall_at_10"] == 1.0
    assert all(0.0 <= r["recall_at_10"] <= 1.0 for r in rows)
    # 3,000 vectors: the engine's "auto" picks exact search, and that row says so
    assert any(r["engine_default"] and r["index"] == "Flat" for r in rows)
    filtered = [r for r in rows if "filtered" in r["index"]]
    assert [r["params"]["allowed_share"] for r in filtered] == [0.5, 0.05, 0.005]
    limit = payload["physical_limit"]["synthetic N=3000"]
    assert limit["bandwidth_gbs"] > 0 and limit["flat_p50_ms_1_threads"] > 0
    assert out.with_suffix(".png").stat().st_size > 0


def test_bench_reindex_reports_cold_unchanged_and_incremental_runs(tmp_path):
    out = tmp_path / "reindex.json"
    run("benchmarks/bench_reindex.py", "--source", str(SAMPLE), "--out", str(out))
    rows = {row["run"]: row for row in json.loads(out.read_text())["rows"]}
    articles = rows["cold"]["articles"]
    assert rows["cold"]["embedded"] > 0.9 * articles and rows["cold"]["snapshot_built"]
    # nothing changed: nothing embedded, no snapshot rebuilt
    assert rows["unchanged"]["embedded"] == 0 and not rows["unchanged"]["snapshot_built"]
    # one record in a hundred edited: only that one is embedded again
    edited = (articles + 99) // 100
    assert rows["one percent changed"]["embedded"] == edited
    assert rows["one percent changed"]["snapshot_built"]
    # built on the serving snapshot; its peer built from scratch computes every list
    assert rows["one percent changed"]["built_on_serving"]
    rebuilt = rows["one percent changed, --rebuild-lists"]
    assert not rebuilt["built_on_serving"] and rebuilt["lists_computed"] == articles
    assert rows["one new article"]["built_on_serving"]
    assert rows["one new article"]["lists_carried"] > 0
    assert all(row["articles_per_s"] > 0 for row in rows.values())


def test_bench_service_measures_the_engine_beside_the_trivial_ceiling(tmp_path):
    out = tmp_path / "service.json"
    run("benchmarks/bench_service.py", "--duration", "1", "--concurrency", "2",
        "--ant-index", str(tmp_path / "none"), "--out", str(out))  # fmt: skip
    payload = json.loads(out.read_text())
    # the C load generator runs wherever libnghttp2's headers are (`make bench-service`
    # installs them); the Python client everywhere
    clients = {"python"} | ({"native"} if Path(NGHTTP2_HEADER).is_file() else set())
    rows = {(row["target"], row["client"]): row for row in payload["rows"]}
    for client in clients:
        assert {("trivial server", client), ("sample corpus (91), ids", client)} <= set(rows)
        ratios = payload["throughput_ratio_to_trivial"]
        assert ratios[f"sample corpus (91), ids @ 2, {client} client"] > 0
    for row in rows.values():
        assert row["errors"] == 0 and row["requests"] > 0
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]


def test_bench_http_measures_the_api_beside_a_bare_uvicorn_server(tmp_path):
    import shutil

    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (make test and make bench-http install it)")
    out = tmp_path / "http.json"
    run("benchmarks/bench_http.py", "--duration", "1", "--concurrency", "2",
        "--ant-index", str(tmp_path / "none"), "--out", str(out))  # fmt: skip
    payload = json.loads(out.read_text())
    rows = {row["server"]: row for row in payload["rows"]}
    assert set(rows) == {"trivial", "recommender"}
    for row in rows.values():
        assert row["index"] == "sample" and row["errors"] == 0 and row["requests_per_s"] > 0
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    assert rows["recommender"]["share_of_trivial"] > 0
    assert payload["machine"]["cores"] >= 1 and out.with_suffix(".png").is_file()
    # every sample answer at k = 10 and 30 compared with the protobuf path's JSON
    assert payload["byte_identical"]["sample"] == {"answers_checked": 182, "answers_identical": 182}


def test_story_pairs_scores_the_models_and_writes_its_own_doc_section(tmp_path):
    """Whole-article pairs judged same story or not: the shipped options and the dense-weight
    sweep per model, written as JSON and as a section of the doc, the rest of it kept."""
    articles = {
        r["id"]: r for r in map(json.loads, SAMPLE.read_text(encoding="utf-8").splitlines())
    }
    seed = articles["libya-security-memoranda"]

    def whole(record: dict) -> str:
        return "\n".join(record.get(field, "") for field in ("title", "lead", "body"))

    pairs = [
        ("german-fm-tripoli-visit", 3.0),
        ("wuhan-life-returns", 1.0),
        *[(other, 1.0 + (n % 3)) for n, other in enumerate(sorted(articles)[:6])],
    ]
    with (tmp_path / "story-pairs.jsonl").open("w", encoding="utf-8") as handle:
        for other, score in pairs:
            text = articles[other]
            handle.write(json.dumps({
                "id1": seed["id"], "id2": other, "lang1": seed["lang"], "lang2": text["lang"],
                "text1": whole(seed), "text2": whole(text), "score": score,
            }, ensure_ascii=False) + "\n")  # fmt: skip
    doc = tmp_path / "quality.md"
    doc.write_text("# Quality\n\nText another benchmark wrote.\n", encoding="utf-8")
    out = tmp_path / "story.json"
    run("benchmarks/story_pairs.py", "--eval-dir", str(tmp_path), "--models",
        "use-multilingual-v3", "--doc", str(doc), "--out", str(out),
        "--cache", str(tmp_path / "cache.sqlite"))  # fmt: skip
    (row,) = json.loads(out.read_text())["models"]
    assert row["model"] == "use-multilingual-v3" and row["shipped"]["n"] == len(pairs)
    assert -1 <= row["shipped"]["spearman"] <= 1
    assert set(row["sweep"]) == {"1.0", "0.95", "0.9", "0.85", "0.8", "0.7", "0.6", "0.5", "0.4"}
    assert row["best"]["spearman"] == max(v["spearman"] for v in row["sweep"].values())
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Quality\n\nText another benchmark wrote.\n")
    assert "<!-- story-pairs: begin -->" in text and "**as shipped**" in text


def test_bench_events_measures_ingest_signals_ranker_and_page_views(tmp_path):
    out = tmp_path / "events.json"
    run("benchmarks/bench_events.py", "--events", "3000", "--readers", "200",
        "--articles", "500", "--single", "320", "--recommends", "10", "--seconds", "1",
        "--out", str(out))  # fmt: skip
    payload = json.loads(out.read_text())
    assert {"cpu", "cores"} <= set(payload["machine"])
    ingest = payload["ingest"]
    assert ingest["events"] == 3000 and ingest["batched_events_per_s"] > 0
    assert ingest["single_event_calls"] == 320 and 0 < ingest["bytes_per_event"] < 1000
    assert payload["signals"]["live_equals_replay"] is True
    assert payload["signals"]["readers"] <= 200
    for name in ("without_ranker", "with_ranker"):
        assert payload["recommend"][name]["n"] == 10
    pages = payload["page_views"]
    for name in ("alone", "stored_with_events", "reordered_with_events"):
        assert pages[name]["n"] > 0 and pages[name]["p99_ms"] >= pages[name]["p50_ms"] > 0
    assert pages["events_per_s_arriving"] > 0
