"""Engine.related and Engine.recommend on the sample corpus: filters, options, explanations."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from recommender.batch.indexing import index_sources
from recommender.config import IndexConfig
from recommender.embedding import Embedder
from recommender.engine import Engine
from recommender.errors import InvalidInputError, NotFoundError
from recommender.ranking import Filters, RankingOptions

SEED = "libya-security-memoranda"


@pytest.fixture(scope="module")
def engine(sample_index, model):
    engine = Engine(sample_index, embedder=Embedder(model=model)).load()
    yield engine
    engine.close()


def ids(response):
    return [r.id for r in response.results]


def test_default_list_puts_the_tripoli_visit_high_and_wuhan_far_below(engine):
    response = engine.related(article_id=SEED, k=90)
    ranked = ids(response)
    assert SEED not in ranked
    assert "german-fm-tripoli-visit" in ranked[:3]
    assert ranked.index("german-fm-tripoli-visit") < ranked.index("wuhan-life-returns")
    # the same story in English and Turkish is reported as its own group
    assert {r.id for r in response.other_languages} >= {"libya-memoranda-en"}
    assert not {r.id for r in response.other_languages} & set(ranked)


def test_language_filter_returns_only_that_language_and_still_k_results(engine):
    response = engine.related(article_id=SEED, k=5, filters=Filters(langs=("zh",)))
    assert len(response.results) == 5
    assert {r.article.lang for r in response.results} == {"zh"}


def test_section_source_and_date_filters(engine):
    sport = engine.related(article_id=SEED, k=5, filters=Filters(sections=("sport",)))
    assert {r.article.section for r in sport.results} == {"sport"}
    wire = engine.related(article_id=SEED, k=5, filters=Filters(sources=("sample-wire",)))
    assert {r.article.source for r in wire.results} == {"sample-wire"}
    after = datetime(2021, 6, 1, tzinfo=UTC)
    later = engine.related(article_id=SEED, k=5, filters=Filters(published_after=after))
    assert later.results and all(r.article.published_at >= after for r in later.results)


def test_excluded_ids_never_appear(engine):
    top = ids(engine.related(article_id=SEED, k=3))
    again = ids(engine.related(article_id=SEED, k=3, filters=Filters(exclude_ids=tuple(top))))
    assert not set(top) & set(again) and len(again) == 3


def test_recency_prefers_later_stories(engine):
    # the index's own options (its model's scale), recency off and on
    base = engine.default_options
    plain = engine.related(article_id=SEED, k=5, options=replace(base, recency_half_life_days=None))
    recent = engine.related(article_id=SEED, k=5, options=replace(base, recency_half_life_days=30))

    seed_date = engine.get_article(SEED).published_at
    gaps = [abs((r.article.published_at - seed_date).days) for r in recent.results]
    # recency keeps the list to the stories of its time...
    assert max(gaps) < max(abs((r.article.published_at - seed_date).days) for r in plain.results)

    # ...and prefers what came next: follow-ups age at half the rate, so they reach further
    # from the seed than background stories do
    def furthest(relation):
        return max(g for g, r in zip(gaps, recent.results, strict=True) if r.relation == relation)

    assert furthest("follow_up") > furthest("background")


def test_each_result_explains_itself(engine):
    response = engine.related(article_id=SEED, k=10)
    arabic = [r for r in response.results if r.article.lang == "ar" and r.lexical_score > 0.1]
    assert arabic and arabic[0].key_terms  # shared words behind the lexical score
    assert all(r.relation in ("follow_up", "background", "same_time") for r in response.results)
    record = response.results[0].to_dict()
    assert {"id", "title", "url", "score", "lang", "published_at", "key_terms", "relation"} <= set(
        record
    )


def test_text_query_and_cross_language_group(engine):
    response = engine.related(
        text="OPEC and Russia agree a record cut in oil production as demand collapses",
        k=5,
        published_at=datetime(2020, 4, 13, tzinfo=UTC),
    )
    assert ids(response)[0] == "opec-cut-en" or "opec-cut-en" in ids(response)[:3]
    assert "opec-cut-ar" in [r.id for r in response.other_languages] + ids(response)


def test_positive_and_negative_examples(engine):
    topical = replace(engine.default_options, recency_half_life_days=None)
    response = engine.related(positive_ids=["opec-cut-en", "ruble-ru"], k=5, options=topical)
    assert "opec-cut-en" not in ids(response) and "ruble-ru" not in ids(response)
    assert {r.article.section for r in response.results[:3]} == {"economy"}
    moved = engine.related(positive_ids=["opec-cut-en"], negative_ids=["gulf-stocks-ar"], k=10)
    assert "gulf-stocks-ar" not in ids(moved)


def test_recommend_from_a_reading_history(engine):
    history = ["cl-final-en", "bundesliga-de", "galatasaray-derby-tr"]
    # the sample corpus spans four years: without recency, to see the reader's interests
    response = engine.recommend(history, k=5, options=RankingOptions(recency_half_life_days=None))
    assert not set(history) & set(ids(response))
    assert sum(r.article.section == "sport" for r in response.results) >= 4
    only_fr = engine.recommend(history, k=3, filters=Filters(langs=("fr",)))
    assert {r.article.lang for r in only_fr.results} == {"fr"}


def test_errors_name_what_was_wrong(engine):
    with pytest.raises(NotFoundError, match="unknown article id 'nope'"):
        engine.related(article_id="nope")
    with pytest.raises(InvalidInputError) as error:
        engine.related(article_id=SEED, k=0)
    assert error.value.field == "k"
    with pytest.raises(InvalidInputError):
        engine.related(article_id=SEED, text="both")


def test_near_duplicate_stories_are_collapsed(tmp_path, model):
    import json

    wire = "Oil prices jumped on Monday after OPEC agreed to cut output by two million barrels"
    records = [
        {"id": "q", "title": "OPEC cuts oil production", "lang": "en", "source": "x"},
        {"id": "dup-a", "title": wire, "lang": "en", "source": "a"},
        {"id": "dup-b", "title": wire + ".", "lang": "en", "source": "b"},
        {"id": "other", "title": "Bayern Munich win the Champions League", "lang": "en"},
    ]
    source = tmp_path / "a.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    index_sources(
        IndexConfig(index_dir=tmp_path / "i", progress=False), [str(source)], Embedder(model=model)
    )
    engine = Engine(tmp_path / "i").load()
    collapsed = engine.related(article_id="q", k=3)
    assert ids(collapsed)[0] in ("dup-a", "dup-b") and collapsed.results[0].folded == 1
    assert not {"dup-a", "dup-b"} <= set(ids(collapsed))
    kept = engine.related(article_id="q", k=3, options=RankingOptions(dedup_threshold=None))
    assert {"dup-a", "dup-b"} <= set(ids(kept))


def test_result_cache_answers_repeats_and_keeps_questions_apart(sample_index, model):
    engine = Engine(sample_index, embedder=Embedder(model=model), result_cache_size=16).load()
    try:
        # deeper than a stored list, so ranked live (a stored list is never cached)
        plain = ids(engine.related(article_id=SEED, k=40))[:5]
        english = ids(engine.related(article_id=SEED, k=5, filters=Filters(langs=("en",))))
        no_recency = RankingOptions(recency_half_life_days=None)
        undated = ids(engine.related(article_id=SEED, k=5, options=no_recency))
        assert ids(engine.related(article_id=SEED, k=40))[:5] == plain
        assert ids(engine.related(article_id=SEED, k=5, filters=Filters(langs=("en",)))) == english
        assert ids(engine.related(article_id=SEED, k=5, options=no_recency)) == undated
        assert engine.results.info()["hits"] == 3 and engine.results.info()["misses"] == 3
        assert english != plain and undated != plain
        # a list where a tuple belongs is not hashable: answered, just not cached
        listed = Filters(langs=["en"])  # type: ignore[arg-type]
        assert ids(engine.related(article_id=SEED, k=5, filters=listed)) == english
    finally:
        engine.close()


def test_key_terms_are_the_same_for_snapshot_rows_and_articles_written_since(
    sample_index, model, tmp_path
):
    import shutil

    from recommender.index.lexical import LexicalModel
    from recommender.ingest.records import Article

    shutil.copytree(sample_index, tmp_path / "i")
    engine = Engine(tmp_path / "i", embedder=Embedder(model=model), writable=True).load()
    engine.live.fold_at = 1  # the write is folded into the main tier: word rows by key then
    try:
        engine.upsert(
            [
                Article(
                    id="written-since",
                    title="وزير الخارجية الألماني في طرابلس لبحث مذكرات التفاهم الأمنية مع تركيا",
                    lang="ar",
                )
            ]
        )
        deadline = time.monotonic() + 60
        while engine.live.folds < 1:
            assert time.monotonic() < deadline, "the live row was never folded"
            time.sleep(0.05)
        assert engine.space.live_rows == 0
        response = engine.related(article_id=SEED, k=30, options=RankingOptions(
            recency_half_life_days=None))  # fmt: skip
        listed = {r.id: r for r in [*response.results, *response.other_languages]}
        assert "written-since" in listed and listed["written-since"].key_terms
        # what the snapshot's word table gives equals reading each text again
        lexical: LexicalModel = engine.snapshot.lexical
        seed = engine.get_article(SEED)
        seed_text = engine.recipe.text(seed.title, seed.lead, seed.body)
        explained = [r for r in listed.values() if r.key_terms]
        assert len(explained) >= 5
        for item in explained:
            a = engine.get_article(item.id)
            expected = lexical.key_terms(seed_text, engine.recipe.text(a.title, a.lead, a.body))
            assert list(item.key_terms) == expected, item.id
    finally:
        engine.close()
