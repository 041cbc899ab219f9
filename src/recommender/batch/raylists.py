"""Stored lists computed on Ray: ``recommender index --engine ray`` (the lists step).

A snapshot's lists are computed where its embeddings were: on the cluster. The snapshot being
built (FAISS index, lexical model, store copy, row labels: every file but the lists being
written) is read once on the driver and put in the object store once; each list actor gets
it from there, writes it to a local temporary folder, opens it as the local worker processes
do (``lists.build``) and computes chunks of rows with the engine's own ranking. Chunks come
back in order, so the files written are the local build's, bytes included
(``tests/test_ray.py``). Below ``lists.build.PARALLEL_FROM`` lists the driver computes them
itself, as locally: starting actors costs more than a few hundred lists.

Ray is an optional extra, imported only here and in ``raybatch``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recommender.batch import raybatch
from recommender.lists.build import RowRunner
from recommender.lists.stored import StoredList, compute


class ListActor:
    """A Ray actor: the snapshot being built, opened from the object store's copy."""

    def __init__(self, files: dict[str, bytes], depth: int) -> None:
        from recommender.rowspace.space import RowSpace
        from recommender.runtime import set_threads
        from recommender.storage.snapshot import open_snapshot

        set_threads(1)  # one actor per CPU
        self.directory = Path(tempfile.mkdtemp(prefix="recommender-lists-"))
        for name, data in files.items():
            (self.directory / name).write_bytes(data)
        self.snapshot = open_snapshot(self.directory, verify=False)
        self.space = RowSpace.from_snapshot(self.snapshot)
        self.depth = depth

    def rows(self, rows: list[int]) -> list[StoredList]:
        """The lists of snapshot rows ``rows``, in order."""
        return [compute(self.space, int(self.space.int_ids[r]), self.depth) for r in rows]

    def close(self) -> None:
        """Let go of the snapshot and its folder."""
        self.snapshot.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def shipped_files(directory: Path) -> dict[str, bytes]:
    """What an actor needs of the snapshot being built: every file but its lists."""
    return {
        path.name: path.read_bytes()
        for path in sorted(directory.iterdir())
        if path.is_file() and not path.name.startswith("lists.")
    }


def runner(address: str | None, workers: int) -> RowRunner:
    """A ``lists.build`` row runner on Ray at ``address`` (None: a local instance), with
    ``workers`` actors (0: one per CPU of the cluster)."""

    def run(directory: Path, depth: int, chunks: list[list[int]]) -> Iterator[list[StoredList]]:
        ray = raybatch.start(address)
        actors: list[Any] = []
        try:
            files = ray.put(shipped_files(directory))
            cpus = int(ray.cluster_resources().get("CPU", 1))
            remote = ray.remote(num_cpus=1)(ListActor)
            actors = [remote.remote(files, depth) for _ in range(max(1, workers or cpus))]
            pool = ray.util.ActorPool(actors)
            yield from pool.map(lambda actor, chunk: actor.rows.remote(chunk), chunks)
        finally:
            ray.get([actor.close.remote() for actor in actors])
            if not address:  # a local instance: the machine is needed for what follows
                ray.shutdown()

    return run
