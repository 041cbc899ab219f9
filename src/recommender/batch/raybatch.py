"""Batch embedding on Ray: ``recommender index --engine ray [--ray-address ADDR]``.

The job is the local one (``indexing``) with one step moved: the texts that miss the
embedding cache are not embedded batch by batch on this machine but collected and embedded
at the end as one Ray Data ``map_batches`` over actor workers, each loading the model once
(on a GPU when the cluster has them). The driver reads and validates the sources, keeps the
working store, the embedding cache and the snapshot, exactly as locally; rows go to the
cluster through the object store in chunks, so the driver holds one chunk at a time.

Order: a record deferred to Ray may be overtaken by a later record of the same id (a newer
version, or a deletion) handled at once; every action carries a sequence number and a
deferred article is written only if it is still its id's latest action, so the outcome is
the local path's.

Ray is an optional extra (``pip install "recommender[ray]"``), imported only here.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recommender.errors import InvalidInputError, ModelError
from recommender.ingest.records import Article, article_from_record

EXTRA_HINT = 'pip install "recommender[ray]"'
CHUNK_ROWS = 2048  # rows per object-store block sent to the cluster
ENCODE_BATCH = 64  # texts per map_batches call in an actor


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or an error naming the extra to install."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise InvalidInputError(
            f"--engine ray needs Ray Data ({exc.name or exc} is missing): {EXTRA_HINT}",
            field="engine",
        ) from None
    return ray


class EncoderActor:
    """A Ray actor (``map_batches``): loads the model once, embeds batches of texts."""

    def __init__(self, model_name: str | None, identity: str, threads: int, device: str) -> None:
        import torch

        from recommender.embedding import Embedder

        torch.set_num_threads(max(1, threads))
        self.embedder = Embedder(model_name, device=device or None)
        if self.embedder.identity != identity:  # another package version on this node
            raise ModelError(
                f"the worker's model is {self.embedder.identity}, the job's {identity}: "
                "install the same recommender and model packages on every node"
            )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        vectors = self.embedder.encode([str(t) for t in batch["text"]])
        return {"seq": batch["seq"], "article": batch["article"], "text": batch["text"],
                "vector": vectors}  # fmt: skip


@dataclass
class Deferred:
    """Articles whose texts the cluster embeds, with the latest action seen per id. Ray is
    started (or joined, at ``address``) at the first text to embed: a run with nothing to
    embed never starts it."""

    address: str | None
    ray: Any = None
    chunks: list[Any] = field(default_factory=list)  # object refs of Arrow tables
    rows: list[tuple[int, str, str]] = field(default_factory=list)  # seq, article JSON, text
    latest: dict[str, int] = field(default_factory=dict)
    count: int = 0
    seq: int = 0

    def action(self, article_id: str) -> int:
        """A new action on ``article_id`` (write or delete); its sequence number."""
        self.seq += 1
        self.latest[article_id] = self.seq
        return self.seq

    def add(self, article: Article, text: str) -> None:
        seq = self.action(article.id)
        record = json.dumps(article.to_dict(), ensure_ascii=False)
        self.rows.append((seq, record, text))
        self.count += 1
        if len(self.rows) >= CHUNK_ROWS:
            self._put()

    def _put(self) -> None:
        import pyarrow as pa

        if self.rows and self.ray is None:
            self.ray = start(self.address)
        if self.rows:
            seqs, records, texts = zip(*self.rows, strict=True)
            table = pa.table({"seq": list(seqs), "article": list(records), "text": list(texts)})
            self.chunks.append(self.ray.put(table))
            self.rows = []

    def embedded(
        self, model_name: str | None, identity: str, workers: int, batch_size: int
    ) -> Iterator[tuple[list[Article], list[str], np.ndarray]]:
        """The deferred articles still current, with their texts and vectors, in batches of
        about ``batch_size`` as the cluster returns them."""
        self._put()
        if not self.chunks or self.ray is None:
            return
        gpus = float(self.ray.cluster_resources().get("GPU", 0))
        cpus = float(self.ray.cluster_resources().get("CPU", 1))
        actors = workers or max(1, int(gpus) if gpus else int(cpus))
        threads = max(1, int(cpus) // actors) if not gpus else 1
        if len(self.chunks) < actors:
            # a small job: one block per actor, or one actor works alone. Split here, not
            # with Dataset.repartition, whose tasks would wait for the CPUs the actors hold
            import pyarrow as pa

            table = pa.concat_tables(self.ray.get(self.chunks))
            size = max(1, -(-table.num_rows // actors))
            self.chunks = [
                self.ray.put(table.slice(i, size)) for i in range(0, table.num_rows, size)
            ]
        dataset = self.ray.data.from_arrow_refs(self.chunks)
        embedded = dataset.map_batches(
            EncoderActor,
            fn_constructor_kwargs={
                "model_name": model_name,
                "identity": identity,
                "threads": threads,
                "device": "cuda" if gpus else "",
            },
            batch_size=ENCODE_BATCH,
            compute=self.ray.data.ActorPoolStrategy(size=actors),
            num_cpus=0 if gpus else threads,
            num_gpus=1 if gpus else 0,
        )
        for batch in embedded.iter_batches(batch_size=batch_size, batch_format="numpy"):
            records = [json.loads(record) for record in batch["article"]]
            current = [
                i for i, seq in enumerate(batch["seq"])
                if self.latest.get(records[i]["id"]) == int(seq)
            ]  # fmt: skip
            if not current:
                continue
            articles = [article_from_record(records[i], detect_language=False) for i in current]
            texts = [str(batch["text"][i]) for i in current]
            yield articles, texts, np.asarray(batch["vector"], dtype=np.float32)[current]

    def close(self) -> None:
        """Leave Ray (a local instance stops): the snapshot and lists build that follow need
        the machine, not Ray's idle processes."""
        if self.ray is not None and self.ray.is_initialized():
            self.ray.shutdown()


def start(address: str | None) -> Any:
    """Ray connected to ``address`` (a cluster), or a local instance of this machine."""
    ray = import_ray()
    if not ray.is_initialized():
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, **quiet)
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
    return ray
