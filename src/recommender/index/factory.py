"""Which FAISS index to build, and its search-time settings (measured defaults)."""

from __future__ import annotations

import re
from typing import Any

import faiss as _faiss

from recommender.errors import InvalidInputError

# faiss ships partial SWIG stubs that do not know its keyword arguments; treat it as untyped
faiss: Any = _faiss

# Measured in benchmarks/bench_ann.py (results/ann-quick.json): exact single-query search over
# 512-d vectors costs ~0.1 ms per 1,000 vectors on one core (20k: ~2 ms); HNSW32 answers in
# 0.2-0.4 ms at recall@10 >= 0.99 from there on, so "auto" switches at 20,000.
HNSW_THRESHOLD = 20_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
# efSearch 64: recall@10 0.991 on ANT embeddings and 0.989 on 100k synthetic, at ~0.2-0.35 ms.
HNSW_EF_SEARCH = 64
IVF_NPROBE = 16


_COUNTS = re.compile(r"(HNSW|IVF|PQ|NSG)(\d+)")
_MINIMUM = {"HNSW": 2, "IVF": 1, "PQ": 1, "NSG": 2}  # below these FAISS aborts or fails late


def check_spec(spec: str) -> None:
    """Refuse index types that FAISS would accept, then abort on (``HNSW0`` kills the process
    with an assertion) or that make no sense here; call it before any work."""
    if spec == "auto":
        return
    if not spec or len(spec) > 100 or not re.fullmatch(r"[A-Za-z0-9_,.x]+", spec):
        raise InvalidInputError(
            f"{spec[:100]!r} is not a FAISS factory string (e.g. Flat, HNSW32,Flat, "
            "IVF1024,Flat, IVF1024,PQ64)",
            field="index_type",
        )
    if "IDMap" in spec:
        raise InvalidInputError("give the factory string without IDMap", field="index_type")
    for kind, count in _COUNTS.findall(spec):
        if int(count) < _MINIMUM[kind]:
            raise InvalidInputError(
                f"{kind}{count} in {spec!r}: {kind} needs at least {_MINIMUM[kind]}",
                field="index_type",
            )


def resolve_spec(spec: str, n_vectors: int) -> str:
    """The FAISS factory string for ``spec`` ("auto" picks by corpus size)."""
    if spec == "auto":
        return "Flat" if n_vectors < HNSW_THRESHOLD else f"HNSW{HNSW_M},Flat"
    return spec


def new_faiss_index(spec: str, dimension: int) -> Any:
    """An empty inner-product FAISS index for a factory string, with our search settings."""
    check_spec(spec)
    try:
        index = faiss.index_factory(dimension, spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise InvalidInputError(
            f"not a FAISS factory string FAISS accepts: {spec!r} ({exc})", field="index_type"
        ) from None
    if "IDMap" in spec:
        raise InvalidInputError("give the factory string without IDMap", field="index_type")
    hnsw = hnsw_of(index)
    if hnsw is not None:
        hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        hnsw.efSearch = HNSW_EF_SEARCH
    concrete = faiss.downcast_index(index)
    if isinstance(concrete, faiss.IndexIVF):
        concrete.nprobe = min(concrete.nlist, IVF_NPROBE)  # saved with the index
    return index


def configure_loaded(index: Any) -> None:
    """Search settings that are not saved with an index (HNSW's efSearch)."""
    hnsw = hnsw_of(index)
    if hnsw is not None:
        hnsw.efSearch = HNSW_EF_SEARCH


def hnsw_of(index: Any) -> Any:
    """The HNSW graph of an index, or None for other types."""
    try:
        return faiss.downcast_index(index).hnsw
    except AttributeError:
        return None
