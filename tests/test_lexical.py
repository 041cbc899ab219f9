"""Key terms: the shared words shown as the reason two stories are linked."""

from __future__ import annotations

from recommender.index.lexical import LexicalModel


def fitted() -> LexicalModel:
    corpus = [
        "Libya signs security memoranda with Turkey in Tripoli",
        "The German foreign minister visits Tripoli",
        "Life returns to normal in Wuhan",
        "Oil ports reopen in eastern Libya",
        "The minister said the talks went well",
        "The weather in the capital was mild",
    ]
    model, _ = LexicalModel.fit(corpus)
    return model


def test_shared_words_rarest_first_as_written_in_the_candidate():
    model = fitted()
    terms = model.key_terms(
        "Turkey and Libya: memoranda signed in Tripoli", "TRIPOLI hosts Turkey's minister; Libya"
    )
    # "Turkey" (one document) is rarer than "Tripoli" and "Libya" (two each); ties keep the
    # candidate's order; the candidate's spelling is shown
    assert terms == ["Turkey", "TRIPOLI", "Libya"]


def test_function_words_and_words_in_half_the_corpus_explain_nothing():
    model = fitted()
    # "the" is a stop word and in most documents; "in" is too short to count as a word
    assert model.key_terms("the talks in the capital", "the weather in the capital") == ["capital"]
    assert model.key_terms("Wuhan", "Tripoli") == []


def test_arabic_words_match_without_their_proclitics():
    model, _ = LexicalModel.fit(
        [
            "زيارة وزير خارجية ألمانيا لطرابلس",
            "الحياة تعود في ووهان",
            "أسعار النفط ترتفع",
            "مباراة كرة القدم الليلة",
        ]
    )
    assert model.key_terms("وفد تركي في طرابلس", "زيارة وزير خارجية ألمانيا لطرابلس") == ["لطرابلس"]


def test_lexical_index_finds_shared_ngrams_and_copies_on_write():
    import numpy as np

    from recommender.index.lexical import LexicalIndex, top_rows

    texts = ["زيارة وزير الخارجية الألماني لطرابلس", "Wuhan life returns to normal", "طرابلس"]
    model, matrix = LexicalModel.fit(texts)
    index = LexicalIndex(matrix[:2])
    grown = index.with_rows(matrix[2:])
    assert len(index) == 2 and len(grown) == 3  # the index a reader holds is unchanged
    query = model.transform(["وصول وزير إلى طرابلس"])
    scores = grown.partial_scores(query)
    everything = np.ones(3, dtype=bool)
    keys = np.arange(3)
    # both share "طرابلس", Wuhan not
    assert set(top_rows(scores, everything, 5, keys)) == {0, 2}
    assert list(top_rows(scores, np.array([True, True, False]), 5, keys)) == [0]
    exact = grown.scores([0, 1, 2], query)
    assert exact[1] == 0 and exact[0] > 0 and exact[2] > 0
