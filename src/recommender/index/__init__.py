"""The indexes: the vector index, a FAISS main tier plus real-time changes (``core``), which
FAISS index to build (``factory``) and search under filters (``filtered``); the lexical index
of character n-grams with its posting lists (``lexical``) and the words behind key terms
(``words``).

May import ``ranking`` (the shared order), ``ingest`` (the text recipe) and the support modules.
"""

from recommender.index.core import VectorIndex
from recommender.index.factory import HNSW_EF_SEARCH, HNSW_M, HNSW_THRESHOLD, resolve_spec
from recommender.index.filtered import EXACT_SUBSET_MAX, SearchResult

__all__ = [
    "EXACT_SUBSET_MAX",
    "HNSW_EF_SEARCH",
    "HNSW_M",
    "HNSW_THRESHOLD",
    "SearchResult",
    "VectorIndex",
    "resolve_spec",
]
