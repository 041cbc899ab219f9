"""Batch reindexing throughput: ``recommender index`` over the ANT corpus, as a batch job runs it.

Runs of the real command into a fresh index directory (model from the installed package,
embedding cache empty at start, or seeded from ``--seed-cache``):

1. ``cold``: every article read, validated, embedded and stored, then the snapshot built
   (store copy, FAISS index, lexical model, every stored list);
2. ``unchanged``: the same sources again: nothing to embed, no snapshot to build;
3. ``one percent changed``: 1 % of the articles edited (a word added to the title): only those
   are embedded, and the new snapshot is built on the serving one (only the lists the edits
   touch are recomputed: ``storage.carry``);
4. ``one percent changed, --rebuild-lists``: another 1 % edited, the snapshot built from
   scratch (lexical refit, every list), as every batch did before: the peer of run 3;
5. ``one new article``: a source with one new story (a follow-up of the seed case).

Reports seconds, articles/s, the peak memory of each run (a separate process each), and of
the snapshot build: lists computed and carried over, seconds spent on lists.
Writes benchmarks/results/reindex.json.

``--seed-cache FILE`` copies an embedding cache (``embeddings.sqlite`` of an index built with
the same model, e.g. the test suite's kept ``ant-and-data.sqlite``) into the fresh index first:
the cold run then measures indexing without the model's time.

``--engine ray`` runs the same runs with ``recommender index --engine ray`` (a local Ray
instance started by each run): its peak memory is sampled over the job's process and every
Ray process (raylet, GCS, the embedding actors), which are not its children. Writes
benchmarks/results/reindex-ray.json.

    .venv/bin/python benchmarks/bench_reindex.py [--limit 5000] [--engine ray] \
        [--model use-multilingual-v3 --seed-cache CACHE]

    (CACHE: e.g. ~/.cache/recommender/test-embeddings/ant-and-data.sqlite, USE's ANT vectors)
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import machine_info  # noqa: E402

ANT = ROOT.parent / "shared" / "eval" / "ant-arabic-news.jsonl.gz"
NEW_ARTICLE = {
    "id": "bench-new-article",
    "lang": "ar",
    "published_at": "2018-06-15",  # within ANT's year, so recency lets it into lists
    "title": "وزير الخارجية الألماني يبحث في طرابلس مذكرات التفاهم الأمنية مع تركيا",
    "body": "بحث وزير الخارجية الألماني في طرابلس مع رئيس المجلس الرئاسي مذكرات التفاهم "
    "الأمنية والعسكرية التي وقعتها ليبيا مع تركيا وقطر ومالطا.",
}


def write_source(
    source: Path, target: Path, limit: int | None, edit_every: int = 0, edit_offset: int = 0
) -> int:
    """Copy ``limit`` records of ``source`` to ``target``; every ``edit_every``-th edited
    (from record ``edit_offset`` on)."""
    opener = gzip.open if source.suffix == ".gz" else open
    count = 0
    with opener(source, "rt", encoding="utf-8") as read, open(target, "w", encoding="utf-8") as out:
        for line in read:
            if limit is not None and count >= limit:
                break
            if edit_every and count % edit_every == edit_offset:
                record = json.loads(line)
                record["title"] = f"{record.get('title', '')} (تحديث)"
                line = json.dumps(record, ensure_ascii=False) + "\n"
            out.write(line)
            count += 1
    return count


def _rss_kb(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status", encoding="utf-8") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def _ray_pids() -> set[int]:
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    command = handle.read()
            except OSError:
                continue
            if b"ray::" in command or b"/ray/" in command:
                pids.add(int(entry))
    return pids


def run_index(
    source: Path, index_dir: Path, engine: str = "local", extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """One ``recommender index`` process; its summary, wall time and peak memory."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "recommender", "index", str(source), "--index-dir",
         str(index_dir), "--quiet", "--max-rejects", "1000000", "--engine", engine, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    peak_sampled = 0
    stop = threading.Event()

    def sample() -> None:  # Ray's processes are not the job's children: sum them all
        nonlocal peak_sampled
        while not stop.wait(0.5):
            peak_sampled = max(peak_sampled, _rss_kb({process.pid} | _ray_pids()))

    sampler = threading.Thread(target=sample, daemon=True)
    if engine == "ray":
        sampler.start()
    out, err = process.communicate()
    stop.set()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"recommender index failed: {err[-2000:]}")
    summary = json.loads(out.strip().splitlines()[-1])
    # the largest child so far: each run is at least as large as the one before it
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = {"summary": summary, "seconds": round(seconds, 2), "peak_rss_max_so_far_kb": peak_kb}
    if engine == "ray":
        result["peak_rss_with_ray_kb"] = peak_sampled
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ANT)
    parser.add_argument("--limit", type=int, help="first N records only (default: all)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    parser.add_argument("--model", help="the model to index with (default: the default)")
    parser.add_argument("--seed-cache", type=Path, help="an embedding cache to start from")
    parser.add_argument(
        "--runs", help="comma-separated names of the runs after cold and unchanged (default: all)"
    )
    parser.add_argument("--out", type=Path, help="default results/reindex[-ray].json")
    args = parser.parse_args()
    suffix = "-ray" if args.engine == "ray" else ""
    args.out = args.out or ROOT / "benchmarks" / "results" / f"reindex{suffix}.json"
    if not args.source.is_file():
        print(f"{args.source} not found: nothing to measure", file=sys.stderr)
        return 1

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        source, edited = Path(tmp) / "articles.jsonl", Path(tmp) / "edited.jsonl"
        edited_again, new = Path(tmp) / "edited-again.jsonl", Path(tmp) / "new.jsonl"
        n = write_source(args.source, source, args.limit)
        write_source(args.source, edited, args.limit, edit_every=100)
        write_source(args.source, edited_again, args.limit, edit_every=100, edit_offset=50)
        new.write_text(json.dumps(NEW_ARTICLE, ensure_ascii=False) + "\n", encoding="utf-8")
        index_dir = Path(tmp) / "index"
        if args.seed_cache:
            index_dir.mkdir()
            shutil.copy(args.seed_cache, index_dir / "embeddings.sqlite")
        model = ("--model", args.model) if args.model else ()
        runs = [
            ("cold", source, model),
            ("unchanged", source, ()),
            ("one percent changed", edited, ()),
            ("one percent changed, --rebuild-lists", edited_again, ("--rebuild-lists",)),
            ("one new article", new, ()),
        ]
        if args.runs:
            wanted = {"cold", "unchanged", *args.runs.split(",")}
            runs = [run for run in runs if run[0] in wanted]
        for name, path, extra in runs:
            result = run_index(path, index_dir, args.engine, extra)
            summary = result["summary"]
            row = {
                "run": name,
                "articles": n,
                "embedded": summary["embedded"],
                "rejected": summary["rejected"],
                "snapshot_built": summary["snapshot_built"],
                "seconds": result["seconds"],
                "articles_per_s": round(n / result["seconds"], 1),
                "lists_seconds": summary["lists_seconds"],
                "lists_computed": summary["lists_computed"],
                "lists_carried": summary["lists_carried"],
                "built_on_serving": bool(summary["built_on"]),
                "peak_rss_max_so_far_mb": round(result["peak_rss_max_so_far_kb"] / 1024, 1),
                "engine": args.engine,
            }
            if "peak_rss_with_ray_kb" in result:
                row["peak_rss_job_and_ray_mb"] = round(result["peak_rss_with_ray_kb"] / 1024, 1)
            print(json.dumps(row, ensure_ascii=False), flush=True)
            rows.append(row)
        sizes = {
            p.name: p.stat().st_size
            if p.is_file()
            else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
            for p in index_dir.iterdir()
        }
    unchanged = rows[1]["seconds"]
    payload = {
        "machine": machine_info(
            source=str(args.source),
            limit=args.limit,
            engine=args.engine,
            model=args.model,
            seed_cache=str(args.seed_cache) if args.seed_cache else None,
        ),
        "rows": rows,
        "ratios_to_unchanged_rerun": {r["run"]: round(r["seconds"] / unchanged, 2) for r in rows},
        "index_dir_bytes": sizes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
