"""Live writes on ANT: the cost of keeping stored lists fresh, and reads while writes pile up.

On a copy of ``var/ant`` (ANT + data/, stored lists, HNSW), in one process with the real
model, the engine as ``serve`` runs it (writable, lists kept fresh, live rows folded in the
background):

1. **Keeping lists fresh.** ``--fresh`` single-article upserts of new stories (texts of
   BBC News and NTREX articles when ``../shared/eval`` has them, else ANT texts under new ids),
   each followed by a wait until every list it changed is recomputed: the upsert's latency
   (embed, store, find the lists it changes), the time until the lists are fresh, and how
   many lists each upsert changed; p50 / p99.
2. **Reads while writes pile up.** Read latency (p50 / p99 of ``--reads`` requests, ids
   drawn uniformly): ``Related`` by id answered from stored lists, the same ranked live
   (stored lists off), raw text, and ``Delete``; measured before any write and again after
   each step of ``--steps`` (cumulative upserts in batches of 100; lists are maintained during
   the first ``--maintained`` upserts, then switched off, since recomputing them costs about
   a second per upsert here, so that the hundred-thousand step measures the folded tiers).

Writes benchmarks/results/writes.json.

    .venv/bin/python benchmarks/bench_writes.py [--steps 1000 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import machine_info  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"


def copy_index(source: Path, target: Path) -> Path:
    """The serving snapshot, the working store and the embedding cache of an index."""
    name = (source / "CURRENT").read_text().strip()
    (target / "snapshots").mkdir(parents=True)
    shutil.copytree(source / "snapshots" / name, target / "snapshots" / name)
    for file in ("CURRENT", "store.sqlite", "embeddings.sqlite"):
        if (source / file).exists():
            shutil.copy2(source / file, target / file)
    return target


def new_articles(n: int, ant_texts: list[dict[str, Any]]) -> list[Any]:
    """``n`` articles that are not in the index, dated across ANT's last year."""
    from recommender.ingest.records import Article, parse_datetime

    records: list[dict[str, Any]] = []
    for name in ("bbc-news.jsonl", "ntrex-parallel.jsonl"):
        path = EVAL / name
        if path.is_file():
            with path.open(encoding="utf-8") as handle:
                for line in handle:
                    record = json.loads(line)
                    # NTREX: one story in several languages, each its own article
                    for lang, text in record.pop("texts", {}).items():
                        records.append({"title": text[:200], "body": text, "lang": lang})
                    if record.get("title") or record.get("body"):
                        records.append(record)
    rng = random.Random(0)
    rng.shuffle(records)
    if not records:
        records = ant_texts
    start = parse_datetime("2019-06-01").timestamp()
    out = []
    for i in range(n):
        record = records[i % len(records)]
        stamp = start + rng.random() * 365 * 86_400
        out.append(Article(
            id=f"live-{i}", title=str(record.get("title", ""))[:500],
            lead=str(record.get("lead", ""))[:1000], body=str(record.get("body", ""))[:4000],
            lang=str(record.get("lang", "")), source="live",
            published_at=parse_datetime(time.strftime("%Y-%m-%d", time.gmtime(stamp))),
        ))  # fmt: skip
    return out


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


def read_latencies(engine: Any, ids: list[str], texts: list[str], n: int) -> dict[str, Any]:
    """p50/p99 of stored-list lookups, live ranking, raw text and deletes, ids uniform."""
    from recommender.ingest.records import Article

    rng = random.Random(len(engine.space))
    chosen = [rng.choice(ids) for _ in range(n)]
    out: dict[str, Any] = {"articles": len(engine.space), "live_rows": engine.space.live_rows}
    timings: dict[str, list[float]] = {"lookup": [], "live": [], "text": [], "delete": []}
    for i, article_id in enumerate(chosen):
        started = time.perf_counter()
        engine.related(article_id=article_id, k=10)
        timings["lookup"].append(time.perf_counter() - started)
        engine.use_lists = False
        started = time.perf_counter()
        engine.related(article_id=article_id, k=10)
        timings["live"].append(time.perf_counter() - started)
        engine.use_lists = True
        if i < n // 4:
            started = time.perf_counter()
            engine.related(text=texts[i % len(texts)], k=10)
            timings["text"].append(time.perf_counter() - started)
    # deletes of stories written for the purpose (then written back is not measured)
    doomed = [Article(id=f"doomed-{len(engine.space)}-{i}", title=texts[i % len(texts)][:200])
              for i in range(20)]  # fmt: skip
    engine.upsert(doomed)
    for article in doomed:
        started = time.perf_counter()
        engine.delete([article.id])
        timings["delete"].append(time.perf_counter() - started)
    engine.wait_for_lists(600)
    for name, values in timings.items():
        out[name] = percentiles(values)
    return out


def fresh_snapshot_reads(
    engine: Any, index_dir: Path, ids: list[str], texts: list[str], reads: int
) -> dict[str, Any]:
    """Publish a snapshot of the working store (no stored lists) and measure reads on it."""
    from recommender.engine import Engine
    from recommender.storage.snapshot import build_snapshot
    from recommender.storage.working import working_store

    manifest = engine.snapshot.manifest
    engine.close()
    store = working_store(index_dir)
    try:
        started = time.perf_counter()
        build_snapshot(index_dir, store, model=manifest.model, model_name=manifest.model_name,
                       dimension=manifest.dimension, index_type=manifest.index_type,
                       text_recipe=manifest.text_recipe)  # fmt: skip
        seconds = time.perf_counter() - started
    finally:
        store.close()
    fresh = Engine(index_dir, writable=True).load()
    try:
        fresh.related(text=texts[0], k=10)
        measured = read_latencies(fresh, ids, texts, reads)
        measured["snapshot_seconds"] = round(seconds, 1)
        return measured
    finally:
        fresh.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ant-index", type=Path, default=ROOT / "var" / "ant")
    parser.add_argument("--fresh", type=int, default=200, help="single upserts timed")
    parser.add_argument("--steps", type=int, nargs="*", default=[1000, 10000, 100000])
    parser.add_argument("--maintained", type=int, default=10000,
                        help="upserts during which stored lists are kept fresh")  # fmt: skip
    parser.add_argument("--reads", type=int, default=400)
    parser.add_argument(
        "--baseline", action="store_true",
        help="then publish a snapshot of the same articles and measure reads on it: what the "
        "same index size costs without live writes",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "writes.json")
    args = parser.parse_args()
    if not (args.ant_index / "CURRENT").is_file():
        print(f"{args.ant_index} has no index: run `make ant-index` first", file=sys.stderr)
        return 2

    from recommender.engine import Engine
    from recommender.lists.freshness import ListTable

    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=ROOT / "var") as tmp:
        index_dir = copy_index(args.ant_index, Path(tmp) / "ant")
        engine = Engine(index_dir, writable=True).load()
        try:
            engine.wait_for_lists(600)
            ids = list(engine.space.ids)
            stored = engine.space.snapshot.store  # type: ignore[union-attr]
            sample = random.Random(1).sample(ids, 200)
            ant_texts = []
            for article_id in sample:
                found = stored.get(article_id)
                if found is not None:
                    a = found.article
                    ant_texts.append({"title": a.title, "lead": a.lead, "lang": a.lang})
            texts = [f"{t['title']}\n{t['lead']}".strip() for t in ant_texts]
            total = max(args.steps, default=0) + args.fresh
            articles = new_articles(total, ant_texts)
            engine.related(text=texts[0], k=10)  # the model loads (and warms) before timing
            rows["before"] = read_latencies(engine, ids, texts, args.reads)
            print(json.dumps({"before": rows["before"]}), flush=True)

            upsert, fresh, changed = [], [], []
            for article in articles[: args.fresh]:
                pending_before = engine.live.lists.recomputed
                started = time.perf_counter()
                engine.upsert([article])
                upsert.append(time.perf_counter() - started)
                engine.wait_for_lists(600)
                fresh.append(time.perf_counter() - started)
                changed.append(engine.live.lists.recomputed - pending_before)
            if args.fresh:
                rows["keep_fresh_per_upsert"] = {
                    "upserts": args.fresh,
                    "upsert": percentiles(upsert),
                    "until_lists_fresh": percentiles(fresh),
                    "lists_changed_p50": float(np.percentile(changed, 50)),
                    "lists_changed_p99": float(np.percentile(changed, 99)),
                    "lists_changed_mean": round(float(np.mean(changed)), 2),
                }
                print(json.dumps(rows["keep_fresh_per_upsert"]), flush=True)

            done = 0
            position = args.fresh
            for step in sorted(args.steps):
                started = time.perf_counter()
                while done < step:
                    if done >= args.maintained and engine.live.lists.enabled:
                        engine.live.lists.stop()
                        engine.live.lists = ListTable.none()  # see the module docstring
                    batch = articles[position : position + min(100, step - done)]
                    engine.upsert(batch)
                    position += len(batch)
                    done += len(batch)
                if engine.live.lists.enabled:
                    engine.wait_for_lists(3600)
                seconds = time.perf_counter() - started
                time.sleep(1.0)
                measured = read_latencies(engine, ids, texts, args.reads)
                measured["upserts"] = done
                measured["lists_maintained"] = engine.live.lists.enabled
                measured["folds"] = engine.live.folds
                measured["write_seconds"] = round(seconds, 1)
                rows[f"after_{step}"] = measured
                print(json.dumps({f"after_{step}": measured}), flush=True)
            if args.baseline:
                rows["fresh_snapshot_of_the_same"] = fresh_snapshot_reads(
                    engine, index_dir, ids, texts, args.reads
                )
                print(json.dumps(rows["fresh_snapshot_of_the_same"]), flush=True)
        finally:
            engine.close()

    payload = {"machine": machine_info(index="ANT + data/ (31.6k)"), **rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
