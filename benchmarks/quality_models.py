"""The built-in models and their fusion side by side -> docs/quality.md, section "Models".

For each of ``use-multilingual-v3``, ``multilingual-e5-small`` and their fusion, each with its
own ranking defaults (``embedding.profiles``): Spearman of relevance against human judgements
of whole-article pairs (``story-pairs.jsonl``: the primary objective) and on
``sts-pairs.jsonl`` per set; same-section P@10 of the engine's default lists on an ANT sample
(every 10th article: e5 costs about 0.2 s per article on 2 cores) and on BBC; NTREX top-1
(mean and worst of 90 ordered language pairs); the seed case on ``data/``; and cold indexing
speed (articles/s, ``index_sources`` on 400 ANT articles with an empty cache). Everything
goes through ``recommender.evaluation`` and the engine's own ranking.

    .venv/bin/python benchmarks/quality_models.py [--models NAME ...]   (make quality-models)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from docsection import replace_section  # noqa: E402
from machine import machine_info  # noqa: E402

from recommender import evaluation  # noqa: E402
from recommender.batch.indexing import index_sources  # noqa: E402
from recommender.config import IndexConfig  # noqa: E402
from recommender.embedding import Embedder, EmbeddingCache  # noqa: E402
from recommender.embedding.profiles import E5, USE, default_options  # noqa: E402

MODELS = (USE, E5, f"{USE}+{E5}")
ANT_STRIDE = 10
SPEED_ARTICLES = 400
SEED, TRIPOLI, WUHAN = "libya-security-memoranda", "german-fm-tripoli-visit", "wuhan-life-returns"
RESULTS = ROOT / "benchmarks" / "results" / "quality-models.json"
BEGIN, END = "<!-- models: begin -->", "<!-- models: end -->"


def clusters(records: list[dict[str, Any]], embedder: Embedder, k: int) -> dict[str, Any]:
    corpus = evaluation.EvalCorpus.build([evaluation.article_text(r) for r in records], embedder)
    space = evaluation.eval_space(corpus, records)
    lists = evaluation.neighbour_lists(space, k, default_options(embedder.model_name))
    labels = [str(r["section"]) for r in records]
    return evaluation.cluster_metrics(lists, labels, corpus.vectors, k, space.published_ts)


def seed_case(embedder: Embedder) -> dict[str, Any]:
    records = evaluation.read_jsonl(ROOT / "data" / "articles.jsonl")
    corpus = evaluation.EvalCorpus.build([evaluation.article_text(r) for r in records], embedder)
    space = evaluation.eval_space(corpus, records)
    ids = [str(r["id"]) for r in records]
    lists = evaluation.neighbour_lists(space, 10, default_options(embedder.model_name))
    ranked = [ids[row] for row in lists[ids.index(SEED)]]
    rank = {name: ranked.index(name) + 1 if name in ranked else None for name in (TRIPOLI, WUHAN)}
    return {"tripoli_rank": rank[TRIPOLI], "wuhan_rank": rank[WUHAN], "top10": ranked}


def indexing_speed(name: str, ant: list[dict[str, Any]]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "sample.jsonl"
        source.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ant[:SPEED_ARTICLES])
        )
        started = time.perf_counter()
        config = IndexConfig(index_dir=Path(tmp) / "index", model_name=name, progress=False)
        summary = index_sources(config, [str(source)])
        seconds = time.perf_counter() - started
    return {"articles": summary.articles, "seconds": round(seconds, 1),
            "articles_per_s": round(summary.articles / seconds, 1)}  # fmt: skip


def measure(name: str, eval_dir: Path, cache: Path, k: int) -> dict[str, Any]:
    embedder = Embedder(name, cache=EmbeddingCache(cache))
    started = time.perf_counter()
    ant_all = evaluation.read_jsonl(eval_dir / "ant-arabic-news.jsonl.gz")
    ant = ant_all[::ANT_STRIDE]
    row: dict[str, Any] = {"model": name, "identity": embedder.identity}
    story = eval_dir / "story-pairs.jsonl"  # the primary objective (benchmarks/story_pairs.py)
    row["story"] = evaluation.eval_pairs(story, embedder) if story.is_file() else None
    print(name, "story pairs", row["story"] and row["story"]["spearman"], flush=True)
    row["pairs"] = evaluation.eval_pairs(eval_dir / "sts-pairs.jsonl", embedder)
    print(name, "pairs", row["pairs"]["spearman"], flush=True)
    row["ant"] = {**clusters(ant, embedder, k), "sample": f"every {ANT_STRIDE}th article"}
    print(name, "ANT", row["ant"]["precision_at_k"], flush=True)
    bbc = evaluation.read_jsonl(eval_dir / "bbc-news.jsonl")
    row["bbc"] = clusters(bbc, embedder, k)
    print(name, "BBC", row["bbc"]["precision_at_k"], flush=True)
    parallel = evaluation.eval_parallel(eval_dir / "ntrex-parallel.jsonl", embedder)
    row["ntrex"] = {key: parallel[key] for key in ("n", "mean_top1", "min_top1")}
    worst = sorted(parallel["pairs"].items(), key=lambda item: item[1]["top1"])[:3]
    row["ntrex"]["worst_pairs"] = {pair: value["top1"] for pair, value in worst}
    print(name, "NTREX", row["ntrex"], flush=True)
    row["seed"] = seed_case(embedder)
    row["evaluation_seconds"] = round(time.perf_counter() - started)
    row["indexing"] = indexing_speed(name, ant_all)
    print(name, "indexing", row["indexing"], flush=True)
    return row


def _f(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown(payload: dict[str, Any]) -> list[str]:
    """The "Models" section of docs/quality.md."""
    rows = payload["models"]
    names = [r["model"] for r in rows]
    head = "| | " + " | ".join(f"`{n}`" for n in names) + " |"
    rule = "|---|" + "---|" * len(names)
    sets = sorted({s for r in rows for s in r["pairs"]["by_set"]})
    lines = [
        BEGIN,
        "## Models: USE, multilingual-e5-small and their fusion",
        "",
        "Regenerated by `make quality-models` (`benchmarks/quality_models.py`); raw figures in",
        f"`benchmarks/results/quality-models.json`. Machine: {payload['machine']['cpu']}, "
        f"{payload['machine']['cores']} cores, {payload['machine']['date']}. Each model ranks",
        "with its own defaults (`embedding/profiles.py`). ANT: every 10th article (3,153;",
        "P@10 is lower than on the whole corpus, where each article has ten times more",
        "same-section neighbours).",
        "",
        head,
        rule,
    ]

    def add(label: str, values: list[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(values) + " |")

    add(
        "**story pairs Spearman** (primary)",
        [_f(r["story"]["spearman"], 4) if r.get("story") else "n/a" for r in rows],
    )
    for name in sets:
        add(f"sts Spearman, {name}", [_f(r["pairs"]["by_set"][name]["spearman"]) for r in rows])
    add("sts Spearman, all pairs pooled", [_f(r["pairs"]["spearman"]) for r in rows])
    for corpus, label in (("ant", "ANT sample"), ("bbc", "BBC")):
        add(f"{label} P@10 (default lists)", [_f(r[corpus]["precision_at_k"], 4) for r in rows])
    add("NTREX top-1, mean of 90 pairs", [_f(r["ntrex"]["mean_top1"], 4) for r in rows])
    add("NTREX top-1, worst pair", [_f(r["ntrex"]["min_top1"], 4) for r in rows])
    add(
        "seed case: Tripoli visit / Wuhan rank",
        [f"{r['seed']['tripoli_rank']} / {r['seed']['wuhan_rank'] or '> 10'}" for r in rows],
    )
    add(
        f"indexing, articles/s (cold, {SPEED_ARTICLES} ANT)",
        [f"{r['indexing']['articles_per_s']:.1f}" for r in rows],
    )
    lines += ["", END]
    return lines


def write_section(payload: dict[str, Any], path: Path) -> None:
    """Replace (or append) the section between the markers, leaving the rest of the doc."""
    replace_section(path, BEGIN, END, "\n".join(markdown(payload)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "embeddings.sqlite")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--markdown-only", action="store_true", help="rewrite the doc from JSON")
    args = parser.parse_args()
    if args.markdown_only:
        write_section(json.loads(RESULTS.read_text(encoding="utf-8")), ROOT / "docs" / "quality.md")
        return 0
    if not args.eval_dir.is_dir():
        print(f"no evaluation corpora at {args.eval_dir}", file=sys.stderr)
        return 2
    rows = [measure(name, args.eval_dir, args.cache, args.k) for name in args.models]
    if RESULTS.is_file():  # models not run this time keep their last figures
        previous = json.loads(RESULTS.read_text(encoding="utf-8"))["models"]
        ran = {r["model"] for r in rows}
        rows = [r for r in previous if r["model"] not in ran] + rows
    rows.sort(key=lambda r: MODELS.index(r["model"]) if r["model"] in MODELS else len(MODELS))
    payload = {"machine": machine_info(), "models": rows}
    RESULTS.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_section(payload, ROOT / "docs" / "quality.md")
    print(f"wrote {RESULTS} and docs/quality.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
