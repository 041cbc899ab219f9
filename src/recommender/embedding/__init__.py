"""Sentence embeddings: the default multilingual model, any sentence-transformers model, a cache.

``load_model`` returns a plain ``sentence_transformers.SentenceTransformer``; ``Embedder`` adds
what the engine needs on top of it: a stable model identity, float32 unit vectors, and the
embedding cache that makes re-embedding an unchanged article free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recommender.embedding.cache import EmbeddingCache
from recommender.embedding.embedder import Embedder, load_model, model_identity
from recommender.embedding.profiles import DEFAULT_MODEL

if TYPE_CHECKING:
    from recommender.embedding.use import UniversalSentenceEncoder

__all__ = [
    "DEFAULT_MODEL",
    "Embedder",
    "EmbeddingCache",
    "UniversalSentenceEncoder",
    "load_model",
    "model_identity",
]


def __getattr__(name: str) -> object:
    # torch is heavy: import the model module only when it is asked for
    if name == "UniversalSentenceEncoder":
        from recommender.embedding.use import UniversalSentenceEncoder

        return UniversalSentenceEncoder
    raise AttributeError(name)
