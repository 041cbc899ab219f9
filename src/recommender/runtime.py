"""Process-wide thread settings of the numeric libraries (FAISS's OpenMP, numpy's BLAS)."""

from __future__ import annotations

from typing import Any

import faiss as _faiss
from threadpoolctl import ThreadpoolController

faiss: Any = _faiss

# One OpenMP thread per query: on 2 cores exact search is faster single-threaded (100k: 9.7 ms
# vs 18.6 ms with 2 threads); concurrent requests use the other core.
SERVING_THREADS = 1

_BLAS = ThreadpoolController()


def set_threads(threads: int) -> None:
    """FAISS (OpenMP) and numpy's BLAS threads for the calling thread's work.

    A server runs many requests at once, each on its own thread: BLAS threads on top of them
    only contend (measured: the 200 x 200 similarity product of one request took 30 % of the
    server's time with 2 BLAS threads under 4 concurrent requests). OpenMP's count is per
    thread, so every request thread calls this once (the gRPC executor's initializer).
    """
    faiss.omp_set_num_threads(max(1, threads))
    _BLAS.limit(limits=max(1, threads), user_api="blas")
