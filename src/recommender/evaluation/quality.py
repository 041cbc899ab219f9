"""Offline evaluation with labelled data, using the engine's own relevance and ranking.

- ``pairs``: correlation of the relevance score with human relatedness judgements;
- ``clusters``: precision@k of same-label neighbours, coverage and intra-list diversity;
- ``parallel``: cross-lingual retrieval of the same document (top-1 accuracy and MRR).

Every text is prepared with the engine's text recipe and embedded with the engine's model
(through the embedding cache). Cluster lists come from the engine's own row space, candidate
generation (``candidates.gather``) and ``ranking.rank``: the figures describe what ``related``
returns, not a separate model.
"""

from __future__ import annotations

import gzip
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.embedding import Embedder
from recommender.embedding.profiles import default_options
from recommender.errors import InvalidInputError
from recommender.index.lexical import LexicalModel
from recommender.ingest.records import Article, parse_datetime
from recommender.ingest.text import DEFAULT_RECIPE, TextRecipe
from recommender.ranking import (
    Filters,
    RankingOptions,
    calibrate,
    rank,
    relevance,
)
from recommender.requests import candidates, queries
from recommender.rowspace.space import RowSpace


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All records of a JSONL (or .jsonl.gz) file; a bad line is an error naming it."""
    name = str(path)
    opener: Any = gzip.open if name.endswith(".gz") else open
    records = []
    with opener(name, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{name}:{number}: invalid JSON: {exc.msg}") from None
    return records


@dataclass
class EvalCorpus:
    """Texts embedded and lexically indexed the way the engine indexes articles."""

    texts: list[str]
    vectors: np.ndarray
    lexical: sp.csr_matrix
    model: LexicalModel
    model_name: str | None = None  # the embedding model (its ranking defaults: ``profiles``)

    @classmethod
    def build(cls, texts: Sequence[str], embedder: Embedder) -> EvalCorpus:
        """Embed and fit the lexical model on ``texts`` (already prepared by a recipe)."""
        vectors = embedder.embed(list(texts), show_progress_bar=len(texts) > 5000)
        model, matrix = LexicalModel.fit(list(texts))
        return cls(list(texts), vectors, matrix, model, embedder.model_name)


def article_text(record: dict[str, Any], recipe: TextRecipe = DEFAULT_RECIPE) -> str:
    """The recipe text of an article-schema record."""
    return recipe.text(record.get("title"), record.get("lead"), record.get("body"))


# -- pairs ------------------------------------------------------------------------------------


def eval_pairs(
    path: str | Path, embedder: Embedder, options: RankingOptions | None = None
) -> dict[str, Any]:
    """Pearson and Spearman correlation of relevance with the ``score`` of each pair: over
    all pairs, per ``set`` (when records name one) and per language pair. Relevance is the
    engine's: hybrid, on the model's calibrated scale (``ranking.calibrate``)."""
    options = options or default_options(embedder.model_name)
    return eval_pairs_under(path, embedder, [options])[0]


def eval_pairs_under(
    path: str | Path, embedder: Embedder, options_list: Sequence[RankingOptions]
) -> list[dict[str, Any]]:
    """``eval_pairs`` under each of ``options_list``, the texts embedded once."""
    records = read_jsonl(path)
    for number, r in enumerate(records, start=1):
        for key in ("id1", "id2", "text1", "text2", "score"):
            if key not in r:
                raise InvalidInputError(f"{path}: record {number} has no {key!r}", field=key)
    index: dict[str, int] = {}
    texts: list[str] = []
    for r in records:
        for side in ("1", "2"):
            key = str(r[f"id{side}"])
            if key not in index:
                index[key] = len(texts)
                texts.append(DEFAULT_RECIPE.text(str(r[f"text{side}"])) or " ")
    corpus = EvalCorpus.build(texts, embedder)
    a = [index[str(r["id1"])] for r in records]
    b = [index[str(r["id2"])] for r in records]
    dense = np.einsum("ij,ij->i", corpus.vectors[a], corpus.vectors[b])
    lexical = np.asarray(corpus.lexical[a].multiply(corpus.lexical[b]).sum(axis=1)).ravel()
    two_languages = np.array([r.get("lang1", "") != r.get("lang2", "") for r in records])
    gold = np.array([float(r["score"]) for r in records])
    pairs = np.array([f"{r.get('lang1', '?')}-{r.get('lang2', '?')}" for r in records])
    sets = np.array([str(r.get("set", "")) for r in records])
    results = []
    for options in options_list:
        calibrated = calibrate(dense, two_languages, options)
        predicted = relevance(calibrated, lexical, options.dense_weight)
        results.append(_correlations(predicted, gold, pairs, sets))
    return results


def _correlations(
    predicted: np.ndarray, gold: np.ndarray, pairs: np.ndarray, sets: np.ndarray
) -> dict[str, Any]:
    from scipy.stats import pearsonr, spearmanr

    def correlations(mask: np.ndarray) -> dict[str, Any]:
        n = int(mask.sum())
        if n < 3 or np.ptp(gold[mask]) == 0:
            return {"n": n, "pearson": None, "spearman": None}
        return {
            "n": n,
            "pearson": round(float(pearsonr(predicted[mask], gold[mask])[0]), 4),
            "spearman": round(float(spearmanr(predicted[mask], gold[mask])[0]), 4),
        }

    overall = correlations(np.ones(len(gold), dtype=bool))
    by_pair = {p: correlations(pairs == p) for p in sorted(set(pairs))}
    by_set = {name: correlations(sets == name) for name in sorted(set(sets)) if name}
    return {**overall, "by_set": by_set, "by_language_pair": by_pair}


# -- clusters ---------------------------------------------------------------------------------


def eval_space(corpus: EvalCorpus, records: Sequence[dict[str, Any]]) -> RowSpace:
    """The engine's row space over an evaluation corpus (row ``i`` is record ``i``), with the
    index type the engine would build for this many articles."""
    articles = [
        Article(
            id=str(i),
            title=str(r.get("title") or ""),
            lang=str(r.get("lang") or ""),
            source=str(r.get("source") or ""),
            section=str(r.get("section") or ""),
            published_at=_datetime(r.get("published_at")),
        )
        for i, r in enumerate(records)
    ]
    return RowSpace.in_memory(
        articles, corpus.vectors, corpus.model, corpus.lexical, model_name=corpus.model_name
    )


def records_space(records: Sequence[dict[str, Any]], embedder: Embedder) -> RowSpace:
    """The engine's row space over article records, embedded and lexically indexed."""
    corpus = EvalCorpus.build([article_text(r) for r in records], embedder)
    return eval_space(corpus, records)


@dataclass
class QueryPool:
    """The candidates of one query, as the engine gathered them (rows, exact dense and
    lexical cosines, and which side found each), without their vectors."""

    rows: np.ndarray
    dense: np.ndarray
    lexical: np.ndarray
    from_dense: np.ndarray
    from_lexical: np.ndarray


def candidate_pools(
    space: RowSpace, fetch: int = 100, half_life_days: float | None = None
) -> list[QueryPool]:
    """For every row as the query: its candidates from both sides (and the time window of
    ``half_life_days``), gathered by the engine's own ``candidates.gather``."""
    pools = []
    for row in range(len(space.ids)):
        query = queries.article_query(space, [space.ids[row]], [])
        found = candidates.gather(space, query, fetch, Filters(), half_life_days=half_life_days)
        pools.append(
            QueryPool(
                found.rows, found.pool.dense, found.pool.lexical, found.from_dense,
                found.from_lexical,
            )
        )  # fmt: skip
    return pools


PoolCache = dict[tuple[int, float | None], list[QueryPool]]


def neighbour_lists(
    space: RowSpace,
    k: int,
    options: RankingOptions,
    *,
    pools: PoolCache | None = None,
) -> list[list[int]]:
    """The top-k list (rows) of every row used as the query, as ``Engine.related`` ranks it:
    the engine's candidates, from the sides ``options`` use, ordered by ``ranking.rank``.
    ``pools`` keeps the candidates of earlier calls (by fetch size and half-life), since
    options that differ only in ranking share them."""
    pools = pools if pools is not None else {}
    fetch = candidates.fetch_size(k, options)
    key = (fetch, options.recency_half_life_days)
    if key not in pools:
        pools[key] = candidate_pools(space, fetch, options.recency_half_life_days)
    dense_side, lexical_side = candidates.sides(options)
    lists: list[list[int]] = []
    for query, qp in enumerate(pools[key]):
        keep = (qp.from_dense & dense_side) | (qp.from_lexical & lexical_side)
        rows = qp.rows[keep]
        vectors = space.vectors.vectors([int(space.int_ids[r]) for r in rows])
        pool = candidates.pool_of(space, rows, qp.dense[keep], qp.lexical[keep], vectors)
        stamp = space.published_ts[query]
        reference = None if math.isnan(stamp) else float(stamp)
        ranked = rank(pool, k, options, query_lang=str(space.langs[query]), reference_ts=reference)
        lists.append([int(rows[i]) for i in ranked.main])
    return lists


def cluster_metrics(
    lists: list[list[int]],
    labels: Sequence[str],
    vectors: np.ndarray,
    k: int,
    published_ts: np.ndarray | None = None,
) -> dict[str, Any]:
    """precision@k of same-label neighbours (a list shorter than k counts its missing slots
    as misses), coverage, intra-list diversity and the median days between query and list."""
    label_array = np.asarray(labels)
    hits = [float(np.sum(label_array[lst] == label_array[q])) / k for q, lst in enumerate(lists)]
    shown = {i for lst in lists for i in lst}
    diversity = []
    for lst in lists:
        if len(lst) > 1:
            sims = vectors[lst] @ vectors[lst].T
            upper = sims[np.triu_indices(len(lst), 1)]
            diversity.append(float(np.mean(1.0 - upper)))
    gaps: list[float] = []
    if published_ts is not None:
        for q, lst in enumerate(lists):
            days = np.abs(published_ts[lst] - published_ts[q]) / 86_400.0
            days = days[~np.isnan(days)]
            if len(days):
                gaps.append(float(np.median(days)))
    return {
        "n": len(lists),
        "k": k,
        "precision_at_k": round(float(np.mean(hits)), 4),
        "median_days_apart": round(float(np.median(gaps)), 1) if gaps else None,
        "coverage": round(len(shown) / max(1, len(lists)), 4),
        "intra_list_diversity": round(float(np.mean(diversity)), 4) if diversity else None,
    }


def eval_clusters(
    path: str | Path,
    embedder: Embedder,
    *,
    label: str = "section",
    k: int = 10,
    options: RankingOptions | None = None,
    corpus: EvalCorpus | None = None,
) -> dict[str, Any]:
    """Same-label precision@k of the engine's lists over a labelled article file."""
    options = options or default_options(embedder.model_name)
    records = read_jsonl(path)
    missing = [i for i, r in enumerate(records, start=1) if not r.get(label)]
    if missing:
        raise InvalidInputError(
            f"{path}: record {missing[0]} has no {label!r} label ({len(missing)} in all)",
            field=label,
        )
    if corpus is None:
        corpus = EvalCorpus.build([article_text(r) for r in records], embedder)
    space = eval_space(corpus, records)
    lists = neighbour_lists(space, k, options)
    labels = [str(r[label]) for r in records]
    return cluster_metrics(lists, labels, corpus.vectors, k, space.published_ts)


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        return None


# -- parallel ---------------------------------------------------------------------------------


def eval_parallel(
    path: str | Path, embedder: Embedder, options: RankingOptions | None = None
) -> dict[str, Any]:
    """Top-1 accuracy and MRR of finding each document's translation, per ordered pair."""
    options = options or default_options(embedder.model_name)
    records = read_jsonl(path)
    if not records or not isinstance(records[0].get("texts"), dict):
        raise InvalidInputError(f"{path}: records need a 'texts' object", field="texts")
    langs = sorted({lang for r in records for lang in r["texts"]})
    entries: list[tuple[int, str]] = []
    texts: list[str] = []
    for doc, record in enumerate(records):
        for lang, text in sorted(record["texts"].items()):
            title, _, body = str(text).partition("\n")
            texts.append(DEFAULT_RECIPE.text(title, None, body) or " ")
            entries.append((doc, lang))
    corpus = EvalCorpus.build(texts, embedder)
    position = {entry: i for i, entry in enumerate(entries)}
    pairs: dict[str, dict[str, float]] = {}
    for src in langs:
        for tgt in langs:
            if src == tgt:
                continue
            docs = [d for d in range(len(records)) if (d, src) in position and (d, tgt) in position]
            queries = [position[(d, src)] for d in docs]
            targets = [position[(d, tgt)] for d in docs]
            dense = corpus.vectors[queries] @ corpus.vectors[targets].T
            lexical = (corpus.lexical[queries] @ corpus.lexical[targets].T).toarray()
            scores = relevance(calibrate(dense, np.ones(dense.shape, bool), options), lexical,
                               options.dense_weight)  # fmt: skip
            correct = scores[np.arange(len(docs)), np.arange(len(docs))]
            ranks = 1 + (scores > correct[:, None]).sum(axis=1)
            pairs[f"{src}->{tgt}"] = {
                "top1": round(float(np.mean(ranks == 1)), 4),
                "mrr": round(float(np.mean(1.0 / ranks)), 4),
            }
    top1 = [p["top1"] for p in pairs.values()]
    return {
        "n": len(records),
        "languages": langs,
        "min_top1": min(top1) if top1 else None,
        "mean_top1": round(float(np.mean(top1)), 4) if top1 else None,
        "pairs": pairs,
    }


def group_counts(values: Sequence[str]) -> dict[str, int]:
    """How many records per value (for reports)."""
    counts: dict[str, int] = defaultdict(int)
    for v in values:
        counts[v] += 1
    return dict(counts)
