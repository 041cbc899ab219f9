"""What the model sees for an article: clean text and the recipe that builds it.

Pure functions, no model: HTML is stripped (script and style dropped, entities decoded),
Unicode is NFKC-normalised (Arabic presentation forms, full-width Latin and ligatures fold to
their plain letters), invisible format characters are removed, whitespace is collapsed, and the
title, lead and body are joined under a length budget.

The default recipe was chosen by measurement on the shared evaluation corpora; the table of
what was tried is in ``docs/text-recipe.md``.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Literal

_TAG_HINT = re.compile(r"<[A-Za-z!/]")
_WHITESPACE = re.compile(r"\s+")
# Zero-width and bidi controls, soft hyphen, BOM: invisible, but they split SentencePiece pieces.
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_ARABIC_DIACRITICS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed]")
_ARABIC_TATWEEL = "\u0640"
_ARABIC_FOLD = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه"})
_BLOCK_TAGS = frozenset(
    (
        "p", "br", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "td",
        "th", "table", "section", "article", "header", "footer", "blockquote", "figcaption",
        "pre",
    )
)  # fmt: skip


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment, dropping script/style and spacing out blocks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "noscript"):
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "noscript"):
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def strip_html(text: str) -> str:
    """Text content of an HTML fragment; entities decoded. Plain text passes through."""
    if not _TAG_HINT.search(text):
        return html.unescape(text)
    extractor = _TextExtractor()
    extractor.feed(text)
    extractor.close()
    return "".join(extractor.parts)


def clean_text(text: str) -> str:
    """HTML stripped, NFKC-normalised, invisible characters removed, whitespace collapsed."""
    text = strip_html(text)
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub("", text)
    return _WHITESPACE.sub(" ", text).strip()


def normalize_arabic(text: str) -> str:
    """Arabic orthographic folding: diacritics and tatweel removed, alef/yeh/teh-marbuta unified."""
    text = _ARABIC_DIACRITICS.sub("", text).replace(_ARABIC_TATWEEL, "")
    return text.translate(_ARABIC_FOLD)


# Han, kana and Hangul carry about three Latin characters' worth of content each (NTREX:
# a Chinese story is 0.35x the length of the English one), so a budget counts them three times;
# otherwise a Chinese article would get three times the story an Arabic one gets.
_WIDE = re.compile("[\u1100-\u11ff\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003ffff]")
WIDE_CHAR_WEIGHT = 3


def text_units(text: str) -> int:
    """Length in Latin-character equivalents: Han, kana and Hangul count three."""
    return len(text) + (WIDE_CHAR_WEIGHT - 1) * len(_WIDE.findall(text))


def truncate(text: str, max_units: int) -> str:
    """At most ``max_units`` (see ``text_units``), cut at a word boundary when one is near."""
    if len(text) <= max_units // WIDE_CHAR_WEIGHT or text_units(text) <= max_units:
        return text
    if not _WIDE.search(text, 0, max_units):
        cut = text[:max_units]  # no wide characters in reach: plain character count
        space = cut.rfind(" ")
        return cut[:space] if space > len(cut) * 0.7 else cut
    used, end = 0, 0
    for end, char in enumerate(text):  # noqa: B007 - end is used after the loop
        used += WIDE_CHAR_WEIGHT if _WIDE.match(char) else 1
        if used > max_units:
            break
    cut = text[:end]
    space = cut.rfind(" ")
    return cut[:space] if space > len(cut) * 0.7 else cut


Fields = Literal["title", "title+lead", "title+lead+body"]


@dataclass(frozen=True)
class TextRecipe:
    """How an article's title, lead and body become the text(s) the model embeds.

    ``fields`` picks the parts; ``max_chars`` is the budget of one embedded text, in Latin
    characters (Han, kana and Hangul count three, see ``text_units``); with
    ``chunks > 1`` the body continues into further texts of ``max_chars`` each, whose vectors
    the caller averages; ``arabic_normalization`` folds Arabic orthography first.
    """

    fields: Fields = "title+lead+body"
    max_chars: int = 2000
    chunks: int = 1
    arabic_normalization: bool = False

    def __post_init__(self) -> None:
        if self.max_chars < 1:
            raise ValueError(f"max_chars must be positive, got {self.max_chars}")
        if self.chunks < 1:
            raise ValueError(f"chunks must be positive, got {self.chunks}")

    def texts(
        self, title: str | None, lead: str | None = None, body: str | None = None
    ) -> list[str]:
        """The texts to embed for one article (one unless ``chunks > 1``); empty if no text."""
        title_c = clean_text(title or "")
        lead_c = clean_text(lead or "") if self.fields != "title" else ""
        body_c = clean_text(body or "") if self.fields == "title+lead+body" else ""
        if lead_c and body_c.startswith(lead_c[: max(1, min(len(lead_c), 80))]):
            lead_c = ""  # the lead is the opening of the body: do not say it twice
        if self.arabic_normalization:
            title_c, lead_c, body_c = (normalize_arabic(t) for t in (title_c, lead_c, body_c))
        head = " ".join(t for t in (title_c, lead_c) if t)
        joined = " ".join(t for t in (head, body_c) if t)
        if not joined:
            return []
        first = truncate(joined, self.max_chars)
        texts = [first]
        rest = joined[len(first) :].strip()
        while rest and len(texts) < self.chunks:
            piece = truncate(rest, self.max_chars)
            texts.append(piece)
            rest = rest[len(piece) :].strip()
        return texts

    def text(self, title: str | None, lead: str | None = None, body: str | None = None) -> str:
        """The first (with one chunk, the only) text to embed; ``""`` if the article has none."""
        texts = self.texts(title, lead, body)
        return texts[0] if texts else ""


DEFAULT_RECIPE = TextRecipe()
