"""Article text preparation: cleaning and the recipe."""

from __future__ import annotations

import pytest

from recommender.ingest.text import (
    DEFAULT_RECIPE,
    TextRecipe,
    clean_text,
    normalize_arabic,
    truncate,
)


def test_html_is_stripped_with_scripts_dropped_and_entities_decoded():
    raw = "<div><h1>Title</h1><script>var x = 1;</script><p>Tom &amp; Jerry&nbsp;win</p></div>"
    assert clean_text(raw) == "Title Tom & Jerry win"


def test_plain_text_with_entities_and_angle_brackets_survives():
    assert clean_text("3 < 5 &amp; 7 > 2") == "3 < 5 & 7 > 2"


def test_unicode_is_normalised_and_invisible_characters_removed():
    # Arabic presentation forms (as pasted from PDFs), full-width digits, zero-width joiner
    assert clean_text("\ufee0\ufef4\ufe91\ufef4\ufe8e") == "ليبيا"
    assert clean_text("２０２４ news\u200b\u200dtoday") == "2024 newstoday"
    assert clean_text("  a \n\n\t b  ") == "a b"


def test_arabic_folding():
    assert normalize_arabic("أَحْمَد إلى مدرسةٌ ـــ") == "احمد الي مدرسه "


def test_truncate_cuts_at_a_word_boundary():
    assert truncate("alpha beta gamma delta", 13) == "alpha beta"
    assert truncate("short", 100) == "short"


def test_recipe_joins_title_lead_body_without_repeating_the_lead():
    recipe = TextRecipe(max_chars=1000)
    text = recipe.text("Title", "The lead sentence.", "The lead sentence. And the rest.")
    assert text == "Title The lead sentence. And the rest."
    assert TextRecipe(fields="title").text("Title", "Lead", "Body") == "Title"
    assert TextRecipe(fields="title+lead").text("Title", "Lead", "Body") == "Title Lead"


def test_recipe_budget_and_chunks():
    body = " ".join(f"word{i}" for i in range(400))
    single = TextRecipe(max_chars=100).texts("T", None, body)
    assert len(single) == 1 and len(single[0]) <= 100
    chunks = TextRecipe(max_chars=100, chunks=3).texts("T", None, body)
    assert len(chunks) == 3 and all(len(c) <= 100 for c in chunks)
    assert chunks[1].startswith("word")


def test_article_without_text_gives_nothing():
    assert DEFAULT_RECIPE.texts("", None, "<p> </p>") == []
    assert DEFAULT_RECIPE.text(None) == ""


def test_recipe_rejects_a_nonsense_budget():
    with pytest.raises(ValueError, match="max_chars"):
        TextRecipe(max_chars=0)


def test_budget_counts_chinese_characters_three_times():
    chinese = "在新冠疫情开始的武汉生活恢复正常" * 10
    assert len(truncate(chinese, 30)) == 10
    assert len(truncate("x" * 100, 30)) == 30
