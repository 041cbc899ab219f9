"""The lexical side of hybrid relevance: TF-IDF over character n-grams, Arabic-aware.

Text is lower-cased and Arabic-folded (hamza forms of alef, alef maqsura, teh marbuta,
diacritics, tatweel), then cut into character n-grams inside word boundaries, which matches
Arabic words across their clitics (``طرابلس`` in ``لطرابلس``) and inflections without a stemmer.
N-grams are hashed into a fixed space (no vocabulary to store), weighted by sublinear tf and
the corpus idf, and L2-normalised, so the lexical score of two texts is their cosine.

``LexicalIndex`` holds the rows of a row space and their inverted index (n-gram -> rows), for
lexical candidates and scores. Key terms for explanations are whole words (``words``) weighted
by the corpus' word idf.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from recommender.index.words import (
    MAX_LEXICAL_CHARS,
    ArticleWords,
    WordTable,
    normalize_for_lexical,
)
from recommender.ranking.ordering import top_by_score

N_FEATURES = 2**20
NGRAM_RANGE = (3, 4)  # (3, 5) scores 0.002 higher on ANT at 40 % more memory


def _char_vectorizer() -> HashingVectorizer:
    return HashingVectorizer(
        analyzer="char_wb",
        ngram_range=NGRAM_RANGE,
        n_features=N_FEATURES,
        alternate_sign=False,
        norm=None,
        preprocessor=normalize_for_lexical,
        dtype=np.float32,
    )


# Lexical candidates come from each query's most distinctive n-grams only (an inverted-index
# lookup over a few short posting lists); the full cosine is then computed for the candidates.
QUERY_FEATURES = 32


def prune_rows(matrix: sp.csr_matrix, keep: int = QUERY_FEATURES) -> sp.csr_matrix:
    """Each row with only its ``keep`` largest weights (the rarest, most telling n-grams)."""
    matrix = matrix.tocsr()
    indptr = [0]
    indices: list[np.ndarray] = []
    data: list[np.ndarray] = []
    for row in range(matrix.shape[0]):
        start, stop = matrix.indptr[row], matrix.indptr[row + 1]
        values, columns = matrix.data[start:stop], matrix.indices[start:stop]
        if len(values) > keep:
            top = np.argpartition(-values, keep - 1)[:keep]
            values, columns = values[top], columns[top]
        data.append(values)
        indices.append(columns)
        indptr.append(indptr[-1] + len(values))
    return sp.csr_matrix(
        (
            np.concatenate(data) if data else np.zeros(0, np.float32),
            np.concatenate(indices) if indices else np.zeros(0, np.int32),
            np.asarray(indptr),
        ),
        shape=matrix.shape,
    )


class LexicalIndex:
    """The lexical rows of a row space and their inverted index, copy on write.

    Rows of the snapshot (``main``) come first; rows added in real time (``delta``) follow.
    ``with_rows`` returns a new index and leaves this one as it was, so a request keeps a
    consistent view while writes go on.
    """

    def __init__(self, main: sp.csr_matrix, delta: sp.csr_matrix | None = None) -> None:
        self.main = main.tocsr()
        self.n_main: int = int(self.main.shape[0])
        self.delta: sp.csr_matrix = (
            delta if delta is not None else sp.csr_matrix((0, self.main.shape[1]), dtype=np.float32)
        )
        # n-gram -> rows: the inverted index for lexical candidates
        self._postings_main: sp.csr_matrix = self.main.T.tocsr()
        self._postings_delta: sp.csr_matrix | None = None

    def __len__(self) -> int:
        return self.n_main + int(self.delta.shape[0])

    def with_rows(self, rows: sp.csr_matrix) -> LexicalIndex:
        """A new index with ``rows`` appended after the existing ones."""
        new = LexicalIndex.__new__(LexicalIndex)
        new.main, new.n_main = self.main, self.n_main
        new._postings_main = self._postings_main
        new.delta = sp.vstack([self.delta, rows]).tocsr()
        new._postings_delta = None
        return new

    def rows(self, rows: np.ndarray) -> sp.csr_matrix:
        """The lexical vectors of several rows, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        if not self.delta.shape[0]:
            return self.main[rows]
        return sp.vstack([self.main, self.delta]).tocsr()[rows]

    def row(self, row: int) -> sp.csr_matrix:
        """The lexical vector of one row."""
        if row < self.n_main:
            return self.main[row]
        return self.delta[row - self.n_main]

    def scores(self, rows: Sequence[int] | np.ndarray, query: sp.csr_matrix) -> np.ndarray:
        """Lexical cosine of the query with each row."""
        out = np.zeros(len(rows), dtype=np.float64)
        query = query.tocsr()
        if not query.nnz:
            return out
        # the query as a dense lookup table over the hashed n-gram space: a sparse matrix by
        # dense vector product, the fastest form measured. The 4 MiB table is kept per thread
        # and cleared after use (allocating and zeroing it cost more than the product).
        lookup = _lookup_table(query.shape[1])
        lookup[query.indices] = query.data
        try:
            wanted = np.asarray(rows, dtype=np.int64)
            in_main = wanted < self.n_main
            for part, matrix, offset in (
                (in_main, self.main, 0),
                (~in_main, self.delta, self.n_main),
            ):
                if part.any():
                    out[part] = matrix[wanted[part] - offset] @ lookup  # row slicing runs in C
        finally:
            lookup[query.indices] = 0.0
        return out

    def partial_scores(self, query: sp.csr_matrix) -> np.ndarray:
        """Every row's score on the query's most distinctive n-grams (0 where none is shared),
        read from the posting lists: compute once, then take ``top_rows`` under each mask."""
        pruned = prune_rows(query)
        scores = np.zeros(len(self), dtype=np.float64)
        if pruned.nnz == 0:
            return scores
        tiers = [(self._postings_main, 0)]
        if self.delta.shape[0]:
            tiers.append((self._delta_postings(), self.n_main))
        for postings, offset in tiers:
            # walk the posting lists of the query's n-grams: one bincount, no sparse product
            starts = postings.indptr[pruned.indices]
            stops = postings.indptr[pruned.indices + 1]
            lengths = stops - starts
            if not lengths.sum():
                continue
            take = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops, strict=True)])
            weights = postings.data[take] * np.repeat(pruned.data, lengths)
            part = np.bincount(postings.indices[take], weights=weights, minlength=postings.shape[1])
            scores[offset : offset + len(part)] += part
        return scores

    def _delta_postings(self) -> sp.csr_matrix:
        # built once per change, on first use (a benign race: two threads build the same)
        if self._postings_delta is None:
            self._postings_delta = self.delta.T.tocsr()
        return self._postings_delta


def top_rows(scores: np.ndarray, mask: np.ndarray, n: int, keys: np.ndarray) -> np.ndarray:
    """The (at most) ``n`` rows with the best positive scores where ``mask`` holds, best first;
    equal scores by ``keys`` (the rows' int ids: ``ordering``), so row order does not choose."""
    hits = np.flatnonzero((scores > 0) & mask)
    chosen: np.ndarray = hits[top_by_score(scores[hits], keys[hits], n)]
    return chosen


_thread_state = threading.local()


def _lookup_table(size: int) -> np.ndarray:
    """This thread's all-zero float32 table of ``size`` entries (callers clear what they set)."""
    table: np.ndarray | None = getattr(_thread_state, "lookup", None)
    if table is None or len(table) != size:
        table = np.zeros(size, dtype=np.float32)
        _thread_state.lookup = table
    return table


@dataclass
class LexicalModel:
    """Corpus statistics for lexical scoring: character n-gram idf and word idf."""

    char_idf: np.ndarray
    word_idf: np.ndarray
    n_documents: int

    @classmethod
    def fit(cls, texts: Sequence[str]) -> tuple[LexicalModel, sp.csr_matrix]:
        """Fit idf on a corpus; returns the model and the corpus' normalised tf-idf matrix."""
        model, matrix, _ = cls._fit(texts)
        return model, matrix

    @classmethod
    def fit_with_words(cls, texts: Sequence[str]) -> tuple[LexicalModel, sp.csr_matrix, WordTable]:
        """``fit``, plus the word table of the corpus (one row per text) for key terms."""
        model, matrix, rows = cls._fit(texts)
        return model, matrix, WordTable.build(rows)

    @classmethod
    def _fit(cls, texts: Sequence[str]) -> tuple[LexicalModel, sp.csr_matrix, list[ArticleWords]]:
        counts = _char_vectorizer().transform([t[:MAX_LEXICAL_CHARS] for t in texts]).tocsr()
        n = counts.shape[0]
        df = np.bincount(counts.indices, minlength=N_FEATURES).astype(np.float32)
        char_idf = (np.log((1 + n) / (1 + df)) + 1).astype(np.float32)
        rows = [ArticleWords.of(text) for text in texts]
        hashed = np.concatenate([r.hashes for r in rows]) if rows else np.zeros(0, np.uint32)
        # stop words are left out of the rows; their idf is never used
        word_df = np.bincount(hashed % N_FEATURES, minlength=N_FEATURES).astype(np.float32)
        word_idf = (np.log((1 + n) / (1 + word_df)) + 1).astype(np.float32)
        model = cls(char_idf, word_idf, n)
        return model, model._weight(counts), rows

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Normalised tf-idf rows for texts (n-grams unseen in the corpus get the top idf)."""
        counts = _char_vectorizer().transform([t[:MAX_LEXICAL_CHARS] for t in texts]).tocsr()
        return self._weight(counts)

    def _weight(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        weighted = counts.copy().astype(np.float32)
        np.log1p(weighted.data, out=weighted.data)  # sublinear tf
        weighted.data *= self.char_idf[weighted.indices]
        norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        result: sp.csr_matrix = sp.diags(1.0 / norms).astype(np.float32) @ weighted
        return result.tocsr()

    @staticmethod
    def words_of(text: str) -> ArticleWords:
        """The words of a text as ``key_terms`` compares them (compute once per query)."""
        return ArticleWords.of(text)

    def key_terms(
        self, query: str | ArticleWords, candidate: str | ArticleWords, limit: int = 5
    ) -> list[str]:
        """Shared words of two texts, rarest in the corpus first (as written in the candidate).

        Each text may be given as its ``ArticleWords`` (``words_of``, a snapshot's table).
        """
        return self.key_terms_against(query).of(candidate, limit)

    def key_terms_against(self, query: str | ArticleWords) -> KeyTerms:
        """``key_terms`` of one query against many candidates (its words sorted once)."""
        return KeyTerms(self, query if isinstance(query, ArticleWords) else self.words_of(query))

    # -- persistence -----------------------------------------------------------------------

    def save(self, directory: Path, matrix: sp.csr_matrix) -> list[Path]:
        """Write idf arrays and the corpus matrix; returns the files written."""
        idf_path = directory / "lexical_idf.npz"
        matrix_path = directory / "lexical_matrix.npz"
        np.savez(idf_path, char_idf=self.char_idf, word_idf=self.word_idf, n=self.n_documents)
        sp.save_npz(matrix_path, matrix, compressed=False)
        return [idf_path, matrix_path]

    @classmethod
    def load(cls, directory: Path) -> tuple[LexicalModel, sp.csr_matrix]:
        """Read what ``save`` wrote."""
        model = cls.load_idf(directory)
        matrix: Any = sp.load_npz(directory / "lexical_matrix.npz")
        return model, matrix.tocsr()

    @classmethod
    def load_idf(cls, directory: Path) -> LexicalModel:
        """The model alone (its idf arrays), without the corpus matrix."""
        with np.load(directory / "lexical_idf.npz") as data:
            return cls(data["char_idf"], data["word_idf"], int(data["n"]))


# words in half the corpus or more explain nothing: idf = log((1 + n) / (1 + df)) + 1
_TELLING_IDF = np.float32(np.log(2.0) + 1)


class KeyTerms:
    """The key terms of candidates against one query: ``LexicalModel.key_terms``."""

    def __init__(self, model: LexicalModel, query: ArticleWords) -> None:
        self._word_idf = model.word_idf
        # a few hundred words: sort once, then search (beats np.isin per candidate)
        self._shared = np.sort(query.hashes)

    def of(self, candidate: str | ArticleWords, limit: int = 5) -> list[str]:
        """Words the candidate shares with the query, rarest first, as the candidate writes
        them (ties in the candidate's word order)."""
        words = (
            candidate if isinstance(candidate, ArticleWords) else LexicalModel.words_of(candidate)
        )
        shared = self._shared
        if not len(shared) or not len(words.hashes):
            return []
        found = np.minimum(np.searchsorted(shared, words.hashes), len(shared) - 1)
        positions = np.flatnonzero(shared[found] == words.hashes)
        idf = self._word_idf[words.hashes[positions] % N_FEATURES]
        telling = idf > _TELLING_IDF
        positions, idf = positions[telling], idf[telling]
        if not len(positions):
            return []
        chosen = positions[np.argsort(-idf, kind="stable")[:limit]]
        surfaces = words.surfaces()
        return [surfaces[p] for p in chosen]
