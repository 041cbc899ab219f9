"""The checks every request passes before any work, whichever adapter it came through: how
many results, which kind of query, the language code, and raw text within its limits."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from recommender.errors import InvalidInputError
from recommender.ingest.records import echo
from recommender.ingest.text import TextRecipe

MAX_K = 100
MAX_TEXT_CHARS = 100_000
_LANG_CODE = re.compile(r"[a-z]{2}")


def check_k(k: int) -> None:
    """``k`` is an int between 1 and ``MAX_K``."""
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise InvalidInputError(f"must be between 1 and {MAX_K}, got {k!r}", field="k")


def check_related(
    article_id: str | None,
    text: str | None,
    positive_ids: Sequence[str],
    negative_ids: Sequence[str],
    lang: str | None,
) -> None:
    """Exactly one kind of query; negative examples only beside positive ones; a language,
    when given, as an ISO 639-1 code."""
    given = sum(x is not None for x in (article_id, text)) + bool(positive_ids)
    if given != 1:
        raise InvalidInputError(
            "give exactly one of article_id, text, positive_ids", field="article_id"
        )
    if negative_ids and not positive_ids:
        raise InvalidInputError("negative_ids need positive_ids", field="negative_ids")
    if lang is not None and lang and not _LANG_CODE.fullmatch(lang):
        raise InvalidInputError(f"{echo(lang)} is not an ISO 639-1 code", field="lang")


def prepared_text(recipe: TextRecipe, text: str) -> str:
    """Raw text as the index's recipe prepares an article's (HTML removed, cut to length)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError("must be a non-empty string", field="text")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInputError(
            f"is {len(text)} characters, the limit is {MAX_TEXT_CHARS}", field="text"
        )
    prepared = recipe.text(text)
    if not prepared:
        raise InvalidInputError("holds nothing once HTML is removed", field="text")
    return prepared


def hashable(key: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The key, or None when a caller passed something unhashable (a list in Filters)."""
    try:
        hash(key)
    except TypeError:
        return None
    return key
