"""The fusion of USE and e5 tuned on story-level pairs, with its guards beside each setting
-> benchmarks/results/tune-fusion.json and docs/quality.md, section "Tuning the fusion".

For each USE share of the mix on the common scale (``profiles.fusion_profile``) and each dense
weight of the hybrid: Spearman on ``story-pairs.jsonl`` (the objective), NTREX top-1 worst
pair and mean (the guard: >= 0.976), the sentence pairs (``sts-pairs.jsonl``, per set) and the
seed case on ``data/``. Vectors come from the benchmarks' embedding cache: each part embeds
each text once, whatever the mix.

    .venv/bin/python benchmarks/tune_fusion.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from docsection import replace_section  # noqa: E402
from machine import machine_info  # noqa: E402

from recommender import evaluation  # noqa: E402
from recommender.embedding import Embedder, EmbeddingCache, e5_onnx  # noqa: E402
from recommender.embedding.profiles import E5, USE, fusion_profile, ranking_options  # noqa: E402
from recommender.ranking import RankingOptions  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "tune-fusion.json"
BEGIN, END = "<!-- tune-fusion: begin -->", "<!-- tune-fusion: end -->"
USE_SHARES = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 1.0)
DENSE_WEIGHTS = (1.0, 0.9, 0.8, 0.7, 0.6)
# NTREX's worst pair may not fall below USE's: 120 of 123 documents (0.9756, "0.976" rounded)
NTREX_GUARD = 0.9756
SEED, TRIPOLI, WUHAN = "libya-security-memoranda", "german-fm-tripoli-visit", "wuhan-life-returns"


class Mixed:
    """An embedder-shaped view of two cached embedders mixed at fixed vector weights."""

    def __init__(self, use: Embedder, e5: Embedder, weights: tuple[float, float]) -> None:
        self.use, self.e5, self.weights = use, e5, weights
        self.model_name = f"{USE}+{E5}"

    def embed(self, texts: list[str], show_progress_bar: bool = False) -> np.ndarray:
        parts = []
        for embedder, weight in ((self.use, self.weights[0]), (self.e5, self.weights[1])):
            if weight > 0:
                parts.append(np.sqrt(weight) * embedder.embed(texts))
        return np.hstack(parts).astype(np.float32)


def setting(share: float, dense_weight: float) -> tuple[tuple[float, float], RankingOptions]:
    """Vector weights and ranking options of a USE share (0: e5 alone, 1: USE alone)."""
    # shares 0 and 1 give the part's own profile: weights (0, 1) or (1, 0), its own scale
    profile = fusion_profile("f", (USE, E5), (share, 1.0 - share), dense_weight)
    return (profile.weights[0], profile.weights[1]), ranking_options(profile)


def seed_case(embedder: Any, options: RankingOptions) -> dict[str, Any]:
    records = evaluation.read_jsonl(ROOT / "data" / "articles.jsonl")
    corpus = evaluation.EvalCorpus.build([evaluation.article_text(r) for r in records], embedder)
    space = evaluation.eval_space(corpus, records)
    ids = [str(r["id"]) for r in records]
    lists = evaluation.neighbour_lists(space, 10, options)
    ranked = [ids[row] for row in lists[ids.index(SEED)]]
    rank = {name: ranked.index(name) + 1 if name in ranked else None for name in (TRIPOLI, WUHAN)}
    return {"tripoli": rank[TRIPOLI], "wuhan": rank[WUHAN]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "embeddings.sqlite")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "quality.md")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--e5-tokens", type=int, default=None, help="e5's cut (default: shipped)")
    parser.add_argument("--render", action="store_true", help="only rewrite the doc from --out")
    args = parser.parse_args()
    if not args.render:
        cache = EmbeddingCache(args.cache)
        use = Embedder(USE, cache=cache)
        tokens = args.e5_tokens or e5_onnx.MAX_TOKENS
        e5 = Embedder(E5, cache=cache, model=e5_onnx.load_onnx_e5(max_tokens=tokens))
        rows = []
        for share in USE_SHARES:
            for weight in DENSE_WEIGHTS:
                vector_weights, options = setting(share, weight)
                mixed = Mixed(use, e5, vector_weights)
                story = evaluation.eval_pairs(args.eval_dir / "story-pairs.jsonl", mixed, options)  # type: ignore[arg-type]
                sts = evaluation.eval_pairs(args.eval_dir / "sts-pairs.jsonl", mixed, options)  # type: ignore[arg-type]
                ntrex = evaluation.eval_parallel(
                    args.eval_dir / "ntrex-parallel.jsonl", mixed, options
                )  # type: ignore[arg-type]
                row = {
                    "use_share": share,
                    "dense_weight": weight,
                    "vector_weights": [round(w, 4) for w in vector_weights],
                    "story": story["spearman"],
                    "story_by_pair": {
                        p: v["spearman"]
                        for p, v in story["by_language_pair"].items()
                        if v["n"] >= 20
                    },
                    "sts": sts["spearman"],
                    "sts_by_set": {s: v["spearman"] for s, v in sts["by_set"].items()},
                    "ntrex_min": ntrex["min_top1"],
                    "ntrex_mean": ntrex["mean_top1"],
                    "seed": seed_case(mixed, options),
                }
                print(row, flush=True)
                rows.append(row)
        payload = {"machine": machine_info(), "e5": e5.identity, "rows": rows}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    payload = json.loads(args.out.read_text(encoding="utf-8"))
    replace_section(args.doc, BEGIN, END, "\n".join(markdown(payload)))
    return 0


def markdown(payload: dict[str, Any]) -> list[str]:
    machine = payload["machine"]
    lines = [
        BEGIN,
        "## Tuning the fusion on story-level pairs, with its guards",
        "",
        "Regenerated by `benchmarks/tune_fusion.py`; raw figures (per language pair and sts set",
        "too) in `benchmarks/results/tune-fusion.json`. Machine: "
        f"{machine['cpu']}, {machine['date']}.",
        f"e5: `{payload['e5']}`. USE share: of the mix on the common scale (0: e5 alone, 1: USE",
        "alone); the dense weight: of the hybrid (rest: lexical). Story: Spearman on",
        "`story-pairs.jsonl` (the objective); NTREX: top-1 worst pair / mean (guard: USE's",
        "0.9756);"
        "sts: pooled Spearman; seed: the Tripoli visit's / Wuhan's rank under the seed on `data/`.",
        "",
        "| USE share | dense weight | story | NTREX worst / mean | sts | seed: Tripoli / Wuhan |",
        "|---|---|---|---|---|---|",
    ]
    best = max(
        (r for r in payload["rows"] if (r["ntrex_min"] or 0) >= NTREX_GUARD),
        key=lambda r: r["story"],
    )
    for r in payload["rows"]:
        mark = "**" if r is best else ""
        lines.append(
            f"| {r['use_share']} | {r['dense_weight']} | {mark}{r['story']:.4f}{mark} | "
            f"{r['ntrex_min']:.4f} / {r['ntrex_mean']:.4f} | {r['sts']:.4f} | "
            f"{r['seed']['tripoli']} / {r['seed']['wuhan'] or '> 10'} |"
        )
    lines += [
        "",
        f"Best within the NTREX guard (bold): USE share {best['use_share']}, dense weight "
        f"{best['dense_weight']}: story {best['story']:.4f}.",
        "",
        END,
    ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
