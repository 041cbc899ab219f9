"""multilingual-e5-small on ONNX Runtime: parity, speed and story-level quality per variant
-> benchmarks/results/e5-runtime.json and docs/quality.md, section "e5 on ONNX Runtime".

Per variant (PyTorch at 512 tokens; ONNX fp32, int8 with 7-bit weights, int8 at 256 and
128 tokens): the cosine to ONNX fp32 on every text of the multilingual parity set
(``tests/multilingual_texts.py``), texts/s on ANT articles beside USE in the same run (the
ratio is what carries over; these machines are shared and noisy), and the Spearman on
``story-pairs.jsonl`` along the hybrid's dense weight, for e5 alone and for its fusion with
USE along the mix on the common scale (``profiles.fusion_profile``).

    .venv/bin/python benchmarks/e5_runtime.py [--ant-texts 120]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from docsection import replace_section  # noqa: E402
from machine import machine_info  # noqa: E402

from recommender.embedding import (  # noqa: E402
    Embedder,
    EmbeddingCache,
    e5_onnx,
    load_model,
)
from recommender.embedding.profiles import E5, USE, fusion_profile, ranking_options  # noqa: E402
from recommender.evaluation.quality import DEFAULT_RECIPE, article_text, read_jsonl  # noqa: E402
from recommender.index.lexical import LexicalModel  # noqa: E402
from recommender.ranking import RankingOptions  # noqa: E402
from recommender.ranking.scoring import calibrate, relevance  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "e5-runtime.json"
BEGIN, END = "<!-- e5-runtime: begin -->", "<!-- e5-runtime: end -->"
# (label, runtime variant or "torch", max tokens)
VARIANTS = (
    ("torch, 512 tokens", "torch", 512),
    ("onnx fp32, 256", "fp32", 256),
    ("onnx int8 (7-bit weights), 256", "int8-reduced", 256),
    ("onnx int8, 256", "int8", 256),
    ("onnx fp32, 128", "fp32", 128),
    ("onnx int8 (7-bit weights), 128", "int8-reduced", 128),
    ("onnx fp32, 64", "fp32", 64),
    ("onnx int8 (7-bit weights), 64", "int8-reduced", 64),
)
STORY_VARIANTS = ("onnx fp32, 256", "onnx int8 (7-bit weights), 256", "onnx fp32, 128",
                  "onnx int8 (7-bit weights), 128", "onnx fp32, 64",
                  "onnx int8 (7-bit weights), 64")  # fmt: skip
DENSE_WEIGHTS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)
USE_MIX = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  # USE's share of the fusion on the common scale


def e5_model(variant: str, tokens: int) -> Any:
    if variant == "torch":
        model = load_model(E5)
        model.max_seq_length = tokens
        return model
    return e5_onnx.load_onnx_e5(variant, max_tokens=tokens)


def ant_texts(path: Path, n: int) -> list[str]:
    texts: list[str] = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            if number % 150 == 0:
                texts.append(article_text(json.loads(line)))
            if len(texts) >= n:
                break
    return texts


def speed(model: Any, texts: list[str], **kwargs: Any) -> float:
    model.encode(texts[:4], **kwargs)
    started = time.perf_counter()
    model.encode(texts, batch_size=16, **kwargs)
    return len(texts) / (time.perf_counter() - started)


def story_scores(
    pairs: list[dict[str, Any]], vectors: dict[str, np.ndarray], index: dict[str, int]
) -> dict[str, Any]:
    """Spearman along dense weight for each model's cosines and for fusions with USE."""
    from scipy.stats import spearmanr

    texts = [""] * len(index)
    for r in pairs:
        for side in ("1", "2"):
            texts[index[str(r[f"id{side}"])]] = DEFAULT_RECIPE.text(str(r[f"text{side}"])) or " "
    _, lexical_matrix = LexicalModel.fit(texts)
    a = [index[str(r["id1"])] for r in pairs]
    b = [index[str(r["id2"])] for r in pairs]
    lexical = np.asarray(lexical_matrix[a].multiply(lexical_matrix[b]).sum(axis=1)).ravel()
    two = np.array([r.get("lang1") != r.get("lang2") for r in pairs])
    gold = np.array([float(r["score"]) for r in pairs])
    cosines = {name: np.einsum("ij,ij->i", v[a], v[b]) for name, v in vectors.items()}

    def spearman(dense: np.ndarray, options: RankingOptions, weight: float) -> float:
        predicted = relevance(calibrate(dense, two, options), lexical, weight)
        return round(float(spearmanr(predicted, gold)[0]), 4)

    out: dict[str, Any] = {"USE": {}}
    use_options = RankingOptions()
    for weight in DENSE_WEIGHTS:
        out["USE"][str(weight)] = spearman(cosines["USE"], use_options, weight)
    for name, cos in cosines.items():
        if name == "USE":
            continue
        grid: dict[str, dict[str, float]] = {}
        for share in USE_MIX:
            # share 0: weights (0, 1) and e5's own shift, scale and bias
            fused = fusion_profile("f", (USE, E5), (share, 1 - share), 0.6)
            options = ranking_options(fused)
            dense = fused.weights[0] * cosines["USE"] + fused.weights[1] * cos
            grid[str(share)] = {str(w): spearman(dense, options, w) for w in DENSE_WEIGHTS}
        out[name] = grid
    return out


def markdown(payload: dict[str, Any]) -> list[str]:
    machine = payload["machine"]
    lines = [
        BEGIN,
        "## e5 on ONNX Runtime: parity, speed and story-level pairs per variant",
        "",
        "Regenerated by `benchmarks/e5_runtime.py`; raw figures in",
        f"`benchmarks/results/e5-runtime.json`. Machine: {machine['cpu']}, {machine['cores']}",
        f"cores, {machine['date']}. Speed: texts/s embedding {payload['ant_texts']} ANT articles",
        "(the engine's text recipe, 2 threads) and the ratio to USE measured just before in",
        "the same run. Parity: cosine to ONNX fp32 at the same length on every text of the",
        f"multilingual parity set ({payload['parity_texts']} texts, 1 to 5,000 characters).",
        "",
        "| variant | texts/s | ratio to USE | parity to fp32: min / mean |",
        "|---|---|---|---|",
    ]
    for row in payload["variants"]:
        parity = row.get("parity_to_fp32")
        shown = f"{parity['min']:.4f} / {parity['mean']:.4f}" if parity else "(reference)"
        if row["runtime"] == "torch":
            shown = "n/a"
        lines.append(
            f"| {row['variant']} | {row['texts_per_s']} | {row['ratio_to_use']} | {shown} |"
        )
    story = payload["story_pairs"]
    lines += [
        "",
        "Story-level Spearman (`story-pairs.jsonl`) along the hybrid's dense weight (columns),",
        "for e5 alone (USE share 0) and fused with USE at a share of the mix on the common scale",
        "(`profiles.fusion_profile`). USE alone: "
        + ", ".join(f"{w}: {v:.4f}" for w, v in story["USE"].items())
        + ".",
        "",
        "| variant, USE share | " + " | ".join(str(w) for w in DENSE_WEIGHTS) + " |",
        "|---|" + "---|" * len(DENSE_WEIGHTS),
    ]
    for label, grid in story.items():
        if label == "USE":
            continue
        for share, row in grid.items():
            values = " | ".join(f"{row[str(w)]:.4f}" for w in DENSE_WEIGHTS)
            lines.append(f"| {label}, {share} | {values} |")
    lines += ["", END]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "embeddings.sqlite")
    parser.add_argument("--ant-texts", type=int, default=120)
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "quality.md")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--render", action="store_true", help="only rewrite the doc from --out")
    args = parser.parse_args()
    if args.render:
        payload = json.loads(args.out.read_text(encoding="utf-8"))
        replace_section(args.doc, BEGIN, END, "\n".join(markdown(payload)))
        return 0
    from multilingual_texts import build

    parity_texts = [text for _, text in build()]
    ant = ant_texts(args.eval_dir / "ant-arabic-news.jsonl.gz", args.ant_texts)
    pairs = read_jsonl(args.eval_dir / "story-pairs.jsonl")
    index: dict[str, int] = {}
    story_texts: list[str] = []
    for r in pairs:
        for side in ("1", "2"):
            if str(r[f"id{side}"]) not in index:
                index[str(r[f"id{side}"])] = len(story_texts)
                story_texts.append(DEFAULT_RECIPE.text(str(r[f"text{side}"])) or " ")
    cache = EmbeddingCache(args.cache)
    use = Embedder(USE, cache=cache)
    rows: list[dict[str, Any]] = []
    use_speed = speed(use.model, ant)
    print(f"USE {use_speed:.1f} texts/s", flush=True)
    vectors = {"USE": use.embed(story_texts)}
    references: dict[int, np.ndarray] = {}
    for label, variant, tokens in VARIANTS:
        model = e5_model(variant, tokens)
        kwargs = {"prompt_name": "document"} if variant == "torch" else {}
        row: dict[str, Any] = {"variant": label, "runtime": variant, "tokens": tokens}
        row["texts_per_s"] = round(speed(model, ant, **kwargs), 2)
        row["use_texts_per_s"] = round(use_speed, 2)
        row["ratio_to_use"] = round(row["texts_per_s"] / use_speed, 3)
        if variant == "torch":  # the before: its speed only
            rows.append(row)
            print(row, flush=True)
            continue
        parity = model.encode(parity_texts, batch_size=16, normalize_embeddings=True, **kwargs)
        if variant == "fp32":
            references[tokens] = parity
        if tokens in references:
            cos = (parity * references[tokens]).sum(axis=1)
            row["parity_to_fp32"] = {"min": round(float(cos.min()), 5),
                                     "mean": round(float(cos.mean()), 5)}  # fmt: skip
        if label in STORY_VARIANTS:
            embedder = Embedder(E5, cache=cache, model=model)
            vectors[label] = embedder.embed(story_texts)
        print(row, flush=True)
        rows.append(row)
        use_speed = speed(use.model, ant)  # again beside each variant: the machine drifts
    payload = {
        "machine": machine_info(),
        "ant_texts": len(ant),
        "parity_texts": len(parity_texts),
        "variants": rows,
        "story_pairs": story_scores(pairs, vectors, index),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    replace_section(args.doc, BEGIN, END, "\n".join(markdown(payload)))
    print(json.dumps(payload["story_pairs"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
