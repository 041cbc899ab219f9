"""Which article text should the model see? Measure recipes on the shared evaluation corpora.

For each recipe (see ``recommender.ingest.text.TextRecipe``) this embeds the corpora with the
default model and reports:

- ANT (Arabic, six sections): same-section precision@10 over a seeded, section-stratified
  sample of ``--ant-sample`` articles (all 31.5k take ~10 minutes a recipe on 2 cores);
- BBC (English, five sections): same-section precision@10 over all 2,225 articles;
- NTREX (123 stories in 10 languages): cross-lingual top-1, mean and worst over the 90 ordered
  language pairs (first line = title, rest = body).

Writes ``benchmarks/results/text-recipes.json`` and the table in ``docs/text-recipe.md``.

    .venv/bin/python benchmarks/text_recipes.py --eval-dir ../shared/eval
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from recommender.embedding import Embedder, EmbeddingCache  # noqa: E402
from recommender.ingest.text import TextRecipe  # noqa: E402

RECIPES: dict[str, TextRecipe] = {
    "title only": TextRecipe(fields="title", max_chars=1000),
    "title + lead": TextRecipe(fields="title+lead", max_chars=1000),
    "title + lead + body, 300 chars": TextRecipe(max_chars=300),
    "title + lead + body, 600 chars": TextRecipe(max_chars=600),
    "title + lead + body, 1000 chars": TextRecipe(max_chars=1000),
    "title + lead + body, 2000 chars": TextRecipe(max_chars=2000),
    "title + lead + body, 3000 chars": TextRecipe(max_chars=3000),
    "title + lead + body, 5000 chars": TextRecipe(max_chars=5000),
    "4 chunks of 500 chars, averaged": TextRecipe(max_chars=500, chunks=4),
    "title + lead + body, 2000 chars, Arabic folding": TextRecipe(
        max_chars=2000, arabic_normalization=True
    ),
}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def stratified_sample(rows: list[dict[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` rows keeping each section's share of the corpus."""
    if n >= len(rows):
        return rows
    rng = random.Random(seed)
    by_section: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_section[row["section"]].append(row)
    sample: list[dict[str, Any]] = []
    for members in by_section.values():
        take = round(n * len(members) / len(rows))
        sample.extend(rng.sample(members, min(take, len(members))))
    return sample


def embed_articles(
    embedder: Embedder, recipe: TextRecipe, rows: list[dict[str, Any]]
) -> np.ndarray:
    """One unit vector per article; chunked recipes average their chunk vectors."""
    per_article = [recipe.texts(r.get("title"), r.get("lead"), r.get("body")) for r in rows]
    flat = [t for texts in per_article for t in texts]
    vectors = embedder.embed(flat)
    out = np.zeros((len(rows), vectors.shape[1]), dtype=np.float32)
    row = 0
    for i, texts in enumerate(per_article):
        if texts:
            out[i] = vectors[row : row + len(texts)].mean(axis=0)
            row += len(texts)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


def precision_at_k(vectors: np.ndarray, labels: list[str], k: int = 10) -> float:
    """Mean share of each article's k nearest neighbours (itself excluded) with its label."""
    label_ids = np.unique(np.asarray(labels), return_inverse=True)[1]
    hits = 0.0
    for start in range(0, len(vectors), 1024):
        block = vectors[start : start + 1024] @ vectors.T
        for j in range(block.shape[0]):
            block[j, start + j] = -np.inf
        top = np.argpartition(-block, k, axis=1)[:, :k]
        hits += float((label_ids[top] == label_ids[start : start + block.shape[0], None]).sum())
    return hits / (len(vectors) * k)


def ntrex_top1(
    embedder: Embedder, recipe: TextRecipe, rows: list[dict[str, Any]]
) -> dict[str, float]:
    langs = sorted(rows[0]["texts"])
    vectors = {}
    for lang in langs:
        articles = []
        for row in rows:
            title, _, body = row["texts"][lang].partition("\n")
            articles.append({"title": title, "body": body})
        vectors[lang] = embed_articles(embedder, recipe, articles)
    scores = {}
    for src in langs:
        for tgt in langs:
            if src != tgt:
                best = (vectors[src] @ vectors[tgt].T).argmax(axis=1)
                scores[f"{src}->{tgt}"] = float((best == np.arange(len(rows))).mean())
    values = list(scores.values())
    worst = min(scores, key=lambda p: scores[p])
    return {"mean": float(np.mean(values)), "min": min(values), "worst_pair": worst}  # type: ignore[dict-item]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--ant-sample", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "embeddings.sqlite")
    parser.add_argument("--only", nargs="*", help="recipe names to run (default: all)")
    args = parser.parse_args()

    ant = stratified_sample(
        read_jsonl(args.eval_dir / "ant-arabic-news.jsonl.gz"), args.ant_sample, args.seed
    )
    bbc = read_jsonl(args.eval_dir / "bbc-news.jsonl")
    ntrex = read_jsonl(args.eval_dir / "ntrex-parallel.jsonl")
    # USE, with which these settings were tuned: the whole archive in minutes, where the
    # default fusion's e5 part takes an hour (its own figures: quality_models, tune_fusion)
    embedder = Embedder("use-multilingual-v3", cache=EmbeddingCache(args.cache))

    results = []
    for name, recipe in RECIPES.items():
        if args.only and name not in args.only:
            continue
        started = time.perf_counter()
        ant_p = precision_at_k(embed_articles(embedder, recipe, ant), [r["section"] for r in ant])
        bbc_p = precision_at_k(embed_articles(embedder, recipe, bbc), [r["section"] for r in bbc])
        nt = ntrex_top1(embedder, recipe, ntrex)
        row = {
            "recipe": name,
            "settings": asdict(recipe),
            "ant_p10": round(ant_p, 4),
            "bbc_p10": round(bbc_p, 4),
            "ntrex_top1_mean": round(nt["mean"], 4),
            "ntrex_top1_min": round(nt["min"], 4),
            "ntrex_worst_pair": nt["worst_pair"],
            "ant_mean_chars": round(
                float(
                    np.mean(
                        [
                            sum(
                                map(len, recipe.texts(r.get("title"), r.get("lead"), r.get("body")))
                            )
                            for r in ant
                        ]
                    )
                )
            ),
            "seconds": round(time.perf_counter() - started, 1),
        }
        print(json.dumps(row, ensure_ascii=False), flush=True)
        results.append(row)

    out = ROOT / "benchmarks" / "results" / "text-recipes.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "ant_sample": len(ant),
        "seed": args.seed,
        "model": embedder.identity,
        "rows": results,
    }
    out.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_markdown(payload, ROOT / "docs" / "text-recipe.md")
    print(f"wrote {out} and docs/text-recipe.md")
    return 0


def write_markdown(payload: dict[str, Any], path: Path) -> None:
    """The table of recipes, between markers in ``docs/text-recipe.md`` (the prose is kept)."""
    lines = [
        f"Model `{payload['model']}`; ANT: stratified sample of {payload['ant_sample']} articles"
        f" (seed {payload['seed']}); BBC: all 2,225; NTREX: 123 stories x 10 languages.",
        "",
        "| recipe | ANT P@10 | BBC P@10 | NTREX top-1 mean | NTREX top-1 worst pair"
        " | ANT chars embedded |",
        "|---|---|---|---|---|---|",
    ]
    for row in payload["rows"]:
        lines.append(
            f"| {row['recipe']} | {row['ant_p10']:.3f} | {row['bbc_p10']:.3f} | "
            f"{row['ntrex_top1_mean']:.3f} | {row['ntrex_top1_min']:.3f} "
            f"({row['ntrex_worst_pair']}) | {row['ant_mean_chars']} |"
        )
    begin, end = "<!-- recipes:begin -->", "<!-- recipes:end -->"
    text = path.read_text(encoding="utf-8") if path.exists() else f"{begin}\n{end}\n"
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    table = "\n".join(lines)
    path.write_text(f"{head}{begin}\n{table}\n{end}{tail}", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
