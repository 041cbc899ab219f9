"""What a request asks for, as one ``Query``: a vector, a lexical row, a language and a date.

An article id, several positive and negative examples, a reader's history and raw text all
become the same object, so candidate generation, ranking and explanation treat them alike.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import scipy.sparse as sp

from recommender.errors import InvalidInputError, NotFoundError
from recommender.ingest.records import detect_lang, echo
from recommender.requests.checks import prepared_text
from recommender.rowspace.space import RowSpace
from recommender.storage.schema import int_id

MAX_EXAMPLES = 100
MAX_HISTORY = 10 * MAX_EXAMPLES
# Rocchio weight of negative examples, and how fast a reader's older reads fade (in reads).
NEGATIVE_WEIGHT = 0.5
HISTORY_HALF_LIFE = 5.0


@dataclass(frozen=True)
class Query:
    """One request, ready for candidate generation.

    ``text`` is the query's own text for key terms; empty when ``text_key`` names the indexed
    article to read them from. ``lang`` is "" when the query has no "same story in other
    languages" (a reader profile). ``reference_ts`` is the date recency counts from.
    """

    vector: np.ndarray
    lexical: sp.csr_matrix
    lang: str
    reference_ts: float | None
    exclude: frozenset[int]
    text: str = ""
    text_key: int | None = None


def article_query(space: RowSpace, positive: Sequence[str], negative: Sequence[str]) -> Query:
    """The query of one article id, or of positive and negative example ids."""
    if len(positive) + len(negative) > MAX_EXAMPLES:
        raise InvalidInputError(f"at most {MAX_EXAMPLES} example ids", field="positive_ids")
    for article_id in [*positive, *negative]:
        if int_id(article_id) not in space.row_of:
            raise NotFoundError(f"unknown article id {echo(article_id)}")
    return _weighted(space, positive, np.ones(len(positive)), negative)


def history_query(space: RowSpace, history_ids: Sequence[str]) -> Query:
    """A reader's profile from the ids they read (oldest first).

    Recent reads weigh more (half weight every ``HISTORY_HALF_LIFE`` reads back); ids not in
    the index are skipped, since readers' histories outlive articles. Recency counts from now.
    """
    if not history_ids:
        raise InvalidInputError("needs at least one article id", field="history_ids")
    if len(history_ids) > MAX_HISTORY:
        raise InvalidInputError(f"at most {MAX_HISTORY} ids", field="history_ids")
    known = [i for i in history_ids if int_id(i) in space.row_of]
    if not known:
        raise NotFoundError("none of the history ids is in the index")
    n = len(known)
    weights = np.power(0.5, (n - 1 - np.arange(n)) / HISTORY_HALF_LIFE)
    query = _weighted(space, known, weights, [])
    return Query(
        vector=query.vector,
        lexical=query.lexical,
        lang="",  # a reader profile has no "same story in other languages"
        reference_ts=now(space),
        exclude=query.exclude | {int_id(i) for i in history_ids},
        text_key=query.text_key,
    )


def text_query(
    space: RowSpace,
    text: str,
    embed: Callable[[list[str]], np.ndarray],
    lang: str | None,
    published_at: datetime | None,
) -> Query:
    """The query of a raw text, prepared as the index's recipe prepares an article and
    embedded with ``embed``; its language is detected when not given, and recency counts from
    its date, or from now when it has none."""
    prepared = prepared_text(space.recipe, text)
    return Query(
        vector=embed([prepared])[0],
        lexical=space.lexical_model.transform([prepared]),
        lang=lang or detect_lang(prepared),
        reference_ts=published_at.timestamp() if published_at is not None else now(space),
        exclude=frozenset(),
        text=prepared,
    )


def now(space: RowSpace) -> float:
    """Now, but no later than the newest article: an archive's "now" is its last day."""
    newest = space.newest_ts()
    current = time.time()
    return min(current, newest) if newest is not None else current


def _weighted(
    space: RowSpace, positive: Sequence[str], weights: np.ndarray, negative: Sequence[str]
) -> Query:
    keys = [int_id(i) for i in positive]
    rows = [space.row_of[key] for key in keys]
    vectors = space.vectors.vectors(keys)
    vector = (weights[:, None] * vectors).sum(axis=0) / weights.sum()
    if negative:
        negative_vectors = space.vectors.vectors([int_id(i) for i in negative])
        vector = vector - NEGATIVE_WEIGHT * negative_vectors.mean(axis=0)
    if len(rows) == 1:  # one article: its own (normalised) row
        lexical = space.lexical.row(rows[0])
    else:
        stacked = sp.vstack([space.lexical.row(r) for r in rows]).tocsr()
        lexical = sp.csr_matrix(sp.csr_matrix(weights[None, :]) @ stacked)  # stays sparse
        norm = float(np.sqrt(lexical.multiply(lexical).sum()))
        lexical = lexical / max(norm, 1e-12)
    langs = Counter(space.langs[r] for r in rows)
    stamps = space.published_ts[rows]
    reference = float(np.nanmax(stamps)) if not np.isnan(stamps).all() else None
    return Query(
        vector=_unit(vector),
        lexical=lexical,
        lang=langs.most_common(1)[0][0] if langs else "",
        reference_ts=reference,
        exclude=frozenset({*keys, *(int_id(i) for i in negative)}),
        text_key=keys[-1],  # key terms come from the last example, read with the results
    )


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    out: np.ndarray = (vector / norm if norm > 0 else vector).astype(np.float32)
    return out
