"""Batch reindexing throughput: ``recommender index`` over the ANT corpus, as a batch job runs it.

Three runs of the real command into a fresh index directory (model from the installed
package, embedding cache empty at start):

1. ``cold``: every article read, validated, embedded and stored, then the snapshot built
   (store copy, FAISS index, lexical model);
2. ``unchanged``: the same sources again: nothing to embed, no snapshot to build;
3. ``one percent changed``: 1 % of the articles edited (a word added to the title): only those
   are embedded, and a new snapshot is built.

Reports seconds, articles/s and the peak memory of each run (a separate process each).
Writes benchmarks/results/reindex.json.

    .venv/bin/python benchmarks/bench_reindex.py [--limit 5000]
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import machine_info  # noqa: E402

ANT = ROOT.parent / "shared" / "eval" / "ant-arabic-news.jsonl.gz"


def write_source(source: Path, target: Path, limit: int | None, edit_every: int = 0) -> int:
    """Copy ``limit`` records of ``source`` to ``target``; every ``edit_every``-th edited."""
    opener = gzip.open if source.suffix == ".gz" else open
    count = 0
    with opener(source, "rt", encoding="utf-8") as read, open(target, "w", encoding="utf-8") as out:
        for line in read:
            if limit is not None and count >= limit:
                break
            if edit_every and count % edit_every == 0:
                record = json.loads(line)
                record["title"] = f"{record.get('title', '')} (تحديث)"
                line = json.dumps(record, ensure_ascii=False) + "\n"
            out.write(line)
            count += 1
    return count


def run_index(source: Path, index_dir: Path) -> dict[str, Any]:
    """One ``recommender index`` process; its summary, wall time and peak memory."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "recommender", "index", str(source), "--index-dir",
         str(index_dir), "--quiet", "--max-rejects", "1000000"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"recommender index failed: {done.stderr[-2000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    # the largest child so far: each run is at least as large as the one before it
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"summary": summary, "seconds": round(seconds, 2), "peak_rss_max_so_far_kb": peak_kb}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ANT)
    parser.add_argument("--limit", type=int, help="first N records only (default: all)")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "reindex.json"
    )
    args = parser.parse_args()
    if not args.source.is_file():
        print(f"{args.source} not found: nothing to measure", file=sys.stderr)
        return 1

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        source, edited = Path(tmp) / "articles.jsonl", Path(tmp) / "edited.jsonl"
        n = write_source(args.source, source, args.limit)
        write_source(args.source, edited, args.limit, edit_every=100)
        index_dir = Path(tmp) / "index"
        for name, path in (("cold", source), ("unchanged", source),
                           ("one percent changed", edited)):  # fmt: skip
            result = run_index(path, index_dir)
            summary = result["summary"]
            row = {
                "run": name,
                "articles": n,
                "embedded": summary["embedded"],
                "rejected": summary["rejected"],
                "snapshot_built": summary["snapshot_built"],
                "seconds": result["seconds"],
                "articles_per_s": round(n / result["seconds"], 1),
                "peak_rss_max_so_far_mb": round(result["peak_rss_max_so_far_kb"] / 1024, 1),
            }
            print(json.dumps(row, ensure_ascii=False), flush=True)
            rows.append(row)
        sizes = {
            p.name: p.stat().st_size
            if p.is_file()
            else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
            for p in index_dir.iterdir()
        }
    payload = {
        "machine": machine_info(source=str(args.source), limit=args.limit),
        "rows": rows,
        "index_dir_bytes": sizes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
