"""What each built-in model costs a site: cold indexing, raw-text ``Related``, memory
-> benchmarks/results/bench-models.json (and the table in benchmarks/README.md, by hand).

Each model runs in its own process, one after the other, twice (the order reversed the second
time; these machines are shared and noisy, so compare the models within a round): cold
indexing of ANT articles (embedding cache empty, ``index_sources`` as ``recommender index``
runs it: embedding, FAISS, lexical model, stored lists), then ``Engine.related(text=...)`` on
the first words of other ANT articles (a text query embeds with the model: p50/p99 in ms),
and the process's peak resident memory.

    .venv/bin/python benchmarks/bench_models.py [--articles 400] [--queries 40]
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

MODELS = ("use-multilingual-v3", "multilingual-e5-small",
          "use-multilingual-v3+multilingual-e5-small")  # fmt: skip
RESULTS = ROOT / "benchmarks" / "results" / "bench-models.json"


def one(model: str, ant: Path, articles: int, queries: int) -> dict[str, Any]:
    """Measured in this process (run by ``main`` in a fresh one per model)."""
    from recommender.batch.indexing import index_sources
    from recommender.config import IndexConfig
    from recommender.engine import Engine

    records: list[dict[str, Any]] = []
    with gzip.open(ant, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            if number % 40 == 0:
                records.append(json.loads(line))
            if len(records) >= articles + queries:
                break
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "ant.jsonl"
        source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                                  for r in records[:articles]))  # fmt: skip
        started = time.perf_counter()
        config = IndexConfig(index_dir=Path(tmp) / "index", model_name=model, progress=False)
        summary = index_sources(config, [str(source)])
        seconds = time.perf_counter() - started
        engine = Engine(Path(tmp) / "index").load()
        texts = [f"{r.get('title', '')}. {r.get('body', '')}"[:600] for r in records[articles:]]
        engine.related(text=texts[0], k=10)
        times = []
        for text in texts:
            began = time.perf_counter()
            engine.related(text=text, k=10)
            times.append((time.perf_counter() - began) * 1000.0)
        engine.close()
    return {
        "model": model,
        "articles": summary.articles,
        "index_seconds": round(seconds, 1),
        "articles_per_s": round(summary.articles / seconds, 2),
        "text_related_ms": {
            "p50": round(float(np.percentile(times, 50)), 1),
            "p99": round(float(np.percentile(times, 99)), 1),
        },
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--articles", type=int, default=400)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    ant = args.eval_dir / "ant-arabic-news.jsonl.gz"
    if args.one:
        print(json.dumps(one(args.one, ant, args.articles, args.queries)))
        return 0
    from machine import machine_info

    rounds = []
    for order in (MODELS, tuple(reversed(MODELS))):
        rows = []
        for model in order:
            out = subprocess.run(
                [sys.executable, __file__, "--one", model, "--eval-dir", str(args.eval_dir),
                 "--articles", str(args.articles), "--queries", str(args.queries)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(row, flush=True)
            rows.append(row)
        rounds.append(rows)
    payload = {"machine": machine_info(), "rounds": rounds}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
