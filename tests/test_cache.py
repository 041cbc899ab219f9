"""The embedding cache: an unchanged text is never embedded twice, across processes too."""

from __future__ import annotations

import numpy as np

from recommender.embedding import DEFAULT_MODEL, Embedder, EmbeddingCache


class CountingEmbedder(Embedder):
    """The real embedder, counting how many texts reach the model."""

    embedded = 0

    def encode(self, texts, show_progress_bar=False):
        self.embedded += len(texts)
        return super().encode(texts, show_progress_bar)


def test_cached_texts_are_not_embedded_again_and_survive_reopening(model, tmp_path):
    path = tmp_path / "cache.sqlite"
    first = CountingEmbedder(model=model, cache=EmbeddingCache(path))
    texts = ["Libya signs memoranda", "Wuhan life returns", "Libya signs memoranda"]
    vectors = first.embed(texts)
    assert first.embedded == 2  # the duplicate text is embedded once
    np.testing.assert_array_equal(vectors[0], vectors[2])

    again = first.embed([*texts, "a new story"])
    assert first.embedded == 3
    np.testing.assert_array_equal(again[:3], vectors)

    reopened = CountingEmbedder(model=model, cache=EmbeddingCache(path))
    np.testing.assert_array_equal(reopened.embed(texts), vectors)
    assert reopened.embedded == 0
    np.testing.assert_allclose(vectors, model.encode(texts), atol=1e-6)


def test_cache_entries_are_per_model_identity(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    key = b"k" * 32
    cache.put_many("model-a", [(key, np.ones(4, dtype=np.float32))])
    assert cache.get_many("model-b", [key]) == {}
    np.testing.assert_array_equal(cache.get_many("model-a", [key])[key], np.ones(4))
    assert cache.count("model-a") == 1 and cache.count() == 1


def test_default_model_identity_names_its_weights(model):
    embedder = Embedder(model=model)
    # the default fuses USE and e5: its identity names both parts' weights and the mix
    assert embedder.model_name == DEFAULT_MODEL == "use-multilingual-v3+multilingual-e5-small"
    use, e5 = embedder.identity.split("+")
    assert use.startswith("use-multilingual-v3@") and len(use) > len("use-multilingual-v3@") + 16
    assert e5.startswith("multilingual-e5-small@") and "-onnx" in e5 and "@w" in e5
    assert embedder.dimension == 512 + 384
