"""The vector index: FAISS main tier plus real-time changes (``core``), which FAISS index to
build (``factory``), and search under filters (``filtered``)."""

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
