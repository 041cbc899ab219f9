"""The lexical side of hybrid relevance: TF-IDF over character n-grams, Arabic-aware.

Text is lower-cased and Arabic-folded (hamza forms of alef, alef maqsura, teh marbuta,
diacritics, tatweel), then cut into character n-grams inside word boundaries, which matches
Arabic words across their clitics (``طرابلس`` in ``لطرابلس``) and inflections without a stemmer.
N-grams are hashed into a fixed space (no vocabulary to store), weighted by sublinear tf and
the corpus idf, and L2-normalised, so the lexical score of two texts is their cosine.

Key terms for explanations are whole words (clitics stripped) weighted the same way.
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from recommender.text import normalize_arabic

N_FEATURES = 2**20
NGRAM_RANGE = (3, 4)  # (3, 5) scores 0.002 higher on ANT at 40 % more memory
MAX_LEXICAL_CHARS = 2000
_WORD = re.compile(r"\w{3,}")
# Arabic proclitics: conjunctions, prepositions and the article, longest first
_CLITICS = ("وبال", "وال", "بال", "كال", "فال", "لل", "ال", "و", "ب", "ل", "ف")
_DIGITS = re.compile(r"^\d+$")
# Function words that corpus idf alone does not push down on small corpora; only used to
# choose the key terms shown as explanations, never for scoring.
_STOPWORD_TEXT = """
    في من على إلى الى عن مع هذا هذه ذلك التي الذي الذين كان كانت يكون بعد قبل حول بين عند
    منذ خلال حتى ضد لدى أن ان إن أو او ثم كما لكن غير كل بعض أي اي ما لم لن قد هو هي هم
    وقد وفي ومن وعلى وأن وهو وهي فيما بها به لها له منها عليه عليها إلا الا
    the and for with that this from was were are has have had its his her their they them
    will would can could not but into over after before about than then also more most said
    says which who whom what when where while been being one two new
    der die das und mit von für den dem des ein eine einer eines ist sind wird wurde auf aus
    bei nach über unter vor zum zur sich auch nicht noch nur wie als
    les des une dans pour par sur avec est sont qui que aux ses leur plus pas été
    los las una unos con por para del que sus más como fue son está han
    bir ile için olarak olan gibi daha çok kadar sonra önce ancak ama veya
    что как это его для при после так уже был была были или его она они
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def normalize_for_lexical(text: str) -> str:
    """Lower-case and Arabic-fold a text for lexical matching."""
    return normalize_arabic(text.lower())


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


def word_stem(word: str) -> str:
    """A word without its Arabic proclitics (other scripts pass through)."""
    for clitic in _CLITICS:
        if word.startswith(clitic) and len(word) - len(clitic) >= 3:
            return word[len(clitic) :]
    return word


@functools.lru_cache(maxsize=200_000)
def _word_key(surface: str) -> str:
    # "" for numbers: one cached lookup per distinct word decides both
    if _DIGITS.match(surface):
        return ""
    return word_stem(normalize_for_lexical(surface))


def words(text: str) -> dict[str, str]:
    """Stemmed key -> first surface form, for the words of a text (3+ letters, no numbers)."""
    found: dict[str, str] = {}
    for surface in dict.fromkeys(_WORD.findall(text)):  # distinct words, in order
        key = _word_key(surface)
        if key:
            found.setdefault(key, surface)
    return found


_STOPWORDS_KEYS = frozenset(word_stem(normalize_for_lexical(w)) for w in _STOPWORDS)


@functools.lru_cache(maxsize=200_000)
def _word_crc(word: str) -> int:
    # stable across processes (Python's hash() is salted)
    return zlib.crc32(word.encode("utf-8"))


@dataclass(frozen=True)
class ArticleWords:
    """One text's words as key terms compare them: 32-bit hashes of the stemmed keys (stop
    words left out) in text order, and the same words as first written in the text."""

    hashes: np.ndarray  # uint32
    _surfaces: str | list[str]  # "\n"-joined (as a snapshot stores them) or a list

    @classmethod
    def of(cls, text: str) -> ArticleWords:
        """The words of a text (its first ``MAX_LEXICAL_CHARS`` characters)."""
        found = {
            k: v for k, v in words(text[:MAX_LEXICAL_CHARS]).items() if k not in _STOPWORDS_KEYS
        }
        hashes = np.fromiter((_word_crc(k) for k in found), dtype=np.uint32, count=len(found))
        return cls(hashes, list(found.values()))

    def surfaces(self) -> list[str]:
        """The words as written, aligned with ``hashes``."""
        if isinstance(self._surfaces, list):
            return self._surfaces
        return self._surfaces.split("\n") if self._surfaces else []


class WordTable:
    """Every snapshot article's ``ArticleWords``, computed once when the snapshot is built.

    Explaining a result then costs an intersection of two small arrays instead of reading and
    tokenising the article again (which was ~0.3 ms per result on ANT).
    """

    FILE = "lexical_words.npz"

    def __init__(
        self, indptr: np.ndarray, hashes: np.ndarray, text_indptr: np.ndarray, text: np.ndarray
    ) -> None:
        self.indptr, self.hashes = indptr, hashes
        self.text_indptr, self.text = text_indptr, text

    @classmethod
    def build(cls, rows: Sequence[ArticleWords]) -> WordTable:
        """A table with one row per item of ``rows``."""
        lengths = [len(r.hashes) for r in rows]
        encoded = ["\n".join(r.surfaces()).encode("utf-8") for r in rows]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        text_indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=text_indptr[1:])
        hashes = np.concatenate([r.hashes for r in rows]) if rows else np.zeros(0, np.uint32)
        text = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        return cls(indptr, hashes.astype(np.uint32), text_indptr, text)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def row(self, row: int) -> ArticleWords:
        """The words of one article."""
        hashes = self.hashes[self.indptr[row] : self.indptr[row + 1]]
        raw = self.text[self.text_indptr[row] : self.text_indptr[row + 1]]
        return ArticleWords(hashes, raw.tobytes().decode("utf-8"))

    def save(self, directory: Path) -> Path:
        """Write the table; returns the file written."""
        path = directory / self.FILE
        np.savez(path, indptr=self.indptr, hashes=self.hashes,
                 text_indptr=self.text_indptr, text=self.text)  # fmt: skip
        return path

    @classmethod
    def load(cls, directory: Path) -> WordTable:
        """Read what ``save`` wrote."""
        with np.load(directory / cls.FILE) as data:
            return cls(data["indptr"], data["hashes"], data["text_indptr"], data["text"])


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
        query_words = query if isinstance(query, ArticleWords) else self.words_of(query)
        candidate_words = (
            candidate if isinstance(candidate, ArticleWords) else self.words_of(candidate)
        )
        shared = query_words.hashes
        if not len(shared) or not len(candidate_words.hashes):
            return []
        shared = np.sort(shared)  # a few hundred words: sort and search beat np.isin here
        found = np.searchsorted(shared, candidate_words.hashes).clip(max=len(shared) - 1)
        positions = np.flatnonzero(shared[found] == candidate_words.hashes)
        idf = self.word_idf[candidate_words.hashes[positions] % N_FEATURES]
        # words in half the corpus or more explain nothing
        telling = idf > np.float32(np.log(2.0) + 1)
        positions, idf = positions[telling], idf[telling]
        # rarest first; a stable sort keeps ties in the candidate's word order
        if not len(positions):
            return []
        chosen = positions[np.argsort(-idf, kind="stable")[:limit]]
        surfaces = candidate_words.surfaces()
        return [surfaces[p] for p in chosen]

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
        with np.load(directory / "lexical_idf.npz") as data:
            model = cls(data["char_idf"], data["word_idf"], int(data["n"]))
        matrix: Any = sp.load_npz(directory / "lexical_matrix.npz")
        return model, matrix.tocsr()
