"""Shared fixtures: the real default model is loaded once per test session."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers import SentenceTransformer

EVAL_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
# Fixtures that load the real model: a test using one is slow (make unit-fast leaves it out)
_MODEL_FIXTURES = {"model", "use_model", "sample_index"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def model() -> SentenceTransformer:
    from recommender.embedding import load_model

    return load_model()


@pytest.fixture(scope="session")
def use_model() -> SentenceTransformer:
    """USE, for the tests that pin it (whole-archive tests about something else than the model)."""
    from recommender.embedding import load_model

    return load_model("use-multilingual-v3")


@pytest.fixture(scope="session")
def eval_dir() -> Path:
    if not EVAL_DIR.is_dir():
        pytest.skip(f"shared evaluation corpora not found at {EVAL_DIR}")
    return EVAL_DIR


ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "articles.jsonl"


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory, model) -> Path:
    """The sample corpus indexed once with the real model (do not modify it in a test)."""
    from recommender.batch.indexing import index_sources
    from recommender.config import IndexConfig
    from recommender.embedding import Embedder

    index_dir = tmp_path_factory.mktemp("sample-index")
    summary = index_sources(
        IndexConfig(index_dir=index_dir, progress=False), [str(SAMPLE)], Embedder(model=model)
    )
    assert summary.rejected == 0 and summary.snapshot_built
    return index_dir


# Embedding caches kept across test sessions (vectors keyed by model identity and text hash, as
# in any index): a second run does not embed ANT again. A fresh machine starts cold.
KEPT_CACHES = (
    Path(os.environ.get("RECOMMENDER_CACHE", Path.home() / ".cache" / "recommender"))
    / "test-embeddings"
)


@contextlib.contextmanager
def kept_embeddings(index_dir: Path, name: str) -> Iterator[None]:
    """Seed ``index_dir``'s embedding cache from the one kept as ``name``, and keep it again
    (atomically) once the block has indexed."""
    from recommender.storage.snapshot import CACHE_FILE

    kept = KEPT_CACHES / f"{name}.sqlite"
    index_dir.mkdir(parents=True, exist_ok=True)
    if kept.is_file():
        _copy_database(kept, index_dir / CACHE_FILE)
    yield
    KEPT_CACHES.mkdir(parents=True, exist_ok=True)
    _copy_database(index_dir / CACHE_FILE, kept)


def kept_array(name: str, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()``, kept across test sessions under ``name`` for as long as ``key`` (what the
    array depends on: a reference package's version, a digest of its inputs) is the same. For
    reference outputs the tests compare against, not for what a test checks."""
    import hashlib

    import numpy as np

    kept = KEPT_CACHES / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npy"
    if kept.is_file():
        return np.load(kept, allow_pickle=False)
    array = np.asarray(compute())
    KEPT_CACHES.mkdir(parents=True, exist_ok=True)
    staging = kept.with_name(f".{kept.name}.{os.getpid()}.tmp")
    with staging.open("wb") as handle:
        np.save(handle, array, allow_pickle=False)
    os.replace(staging, kept)
    return array


def _copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (WAL included), replacing ``target`` at once."""
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(staging)) as dst,
    ):
        src.backup(dst)
    os.replace(staging, target)


def listening_port(line: str) -> int:
    """The gRPC port of a "listening on 127.0.0.1:PORT" line."""
    import re

    found = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    assert found, f"not a listening line: {line!r}"
    return int(found.group(1))


def listening_lines(process, count: int = 1, timeout: float = 120.0) -> list[str]:
    """The first ``count`` "listening on" lines a ``recommender serve`` process prints on
    stderr (its processes also log JSON lines there, in any order); stderr keeps being read
    in the background so that the servers never block on a full pipe."""
    import threading
    import time

    lines: list[str] = []
    process.log_lines = lines  # what it printed so far: for a test's failure message

    def drain() -> None:
        for line in process.stderr:
            lines.append(line)

    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in list(lines) if "listening on 127.0.0.1:" in line]
        if len(found) >= count:
            return found[:count]
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the server did not report listening: {lines[-5:]}")
        time.sleep(0.05)
