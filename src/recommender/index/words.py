"""Words as explanations compare them: stemmed keys (Arabic proclitics stripped), function
words left out, hashed; and the per-snapshot ``WordTable`` of every article's words."""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recommender.ingest.text import normalize_arabic

MAX_LEXICAL_CHARS = 2000  # the lexical side reads this much of each text
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
