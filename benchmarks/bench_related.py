"""In-process latency of ``Engine.related`` by article id, uncached, one thread.

What a page view costs the engine itself, without gRPC: the same query articles (a seeded
sample of the index) are asked once each after a warm-up, with the result cache off. Prints
and writes p50 / p90 / p99 and the mean in milliseconds, per ranking configuration, with the
machine it ran on.

    .venv/bin/python benchmarks/bench_related.py --index-dir var/ant --out results/related-ant.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import machine_info  # noqa: E402

from recommender.engine import Engine  # noqa: E402
from recommender.ranking import Filters, RankingOptions  # noqa: E402


def measure(engine: Engine, ids: list[str], **kwargs: object) -> dict[str, float]:
    """Latency of one uncached ``related`` per id, in milliseconds."""
    for article_id in ids[:20]:  # warm-up: page cache, lazily built tables
        engine.related(article_id=article_id, **kwargs)  # type: ignore[arg-type]
    times = []
    for article_id in ids:
        started = time.perf_counter()
        engine.related(article_id=article_id, **kwargs)  # type: ignore[arg-type]
        times.append((time.perf_counter() - started) * 1000.0)
    values = np.asarray(times)
    return {
        "n": len(values),
        "mean_ms": round(float(values.mean()), 3),
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p90_ms": round(float(np.percentile(values, 90)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, default=ROOT / "var" / "ant")
    parser.add_argument("--queries", type=int, default=500, help="query articles (sampled)")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--label", default="", help="a name for this run (e.g. the commit)")
    parser.add_argument("--out", type=Path, help="JSON file to write")
    args = parser.parse_args()

    engine = Engine(args.index_dir).load()  # result cache off: every call ranks
    store = engine.snapshot.store  # read through the store: runs on older engines too
    ids = sorted(store.all_ids())
    rng = np.random.default_rng(7)
    sample = [ids[i] for i in rng.choice(len(ids), size=min(args.queries, len(ids)), replace=False)]
    langs = store.facet_counts("lang")
    top_lang = max(langs, key=langs.__getitem__) if langs else ""
    configurations = {
        "default": {},
        "no recency": {"options": RankingOptions(recency_half_life_days=None)},
        f"lang filter ({top_lang})": {"filters": Filters(langs=(top_lang,))},
    }
    rows = []
    for name, kwargs in configurations.items():
        row = {"configuration": name, **measure(engine, sample, k=args.k, **kwargs)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    engine.close()
    payload = {
        "label": args.label,
        "index_dir": str(args.index_dir),
        "articles": len(ids),
        "k": args.k,
        "rows": rows,
        "machine": machine_info(threads=1),
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
