"""recommender: related stories and reader recommendations for news sites.

Articles in many languages are embedded with sentence-transformers into one multilingual
vector space (by default Google's USE multilingual v3, shipped on PyPI) and searched with FAISS.

Where to look: ``recommender.Engine`` (the one API), ``recommender.embedding.load_model``,
``recommender.client.RecommenderClient`` (the gRPC client); the layers are drawn in
``docs/architecture.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from recommender.engine import Engine

__all__ = ["Engine", "__version__"]


def __getattr__(name: str) -> object:
    # the engine pulls in numpy and FAISS: import it when it is asked for, not for --version
    if name == "Engine":
        from recommender.engine import Engine

        return Engine
    raise AttributeError(name)
