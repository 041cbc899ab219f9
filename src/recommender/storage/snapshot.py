"""Versioned index snapshots: manifest, checksums, atomic publish, pruning.

An index directory looks like this::

    INDEX_DIR/
      store.sqlite          the working store (source of truth; batch jobs and upserts write here)
      embeddings.sqlite     the embedding cache
      CURRENT               the name of the snapshot that serves (replaced atomically)
      snapshots/
        20261129T150102123456-s42/
          store.sqlite      consistent copy of the working store at change counter 42
          index.faiss, labels.npy, index.json
          manifest.json     model, dimension, index type, count, build time, checksums

A snapshot is built under ``snapshots/.building-*`` and renamed into place when complete;
``CURRENT`` is switched (write a temp file, fsync, rename) only after that. A build that is
killed or fails leaves ``CURRENT`` and the snapshot it names untouched.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.errors import NotFoundError, RecommenderError
from recommender.files import fsync_dir, fsync_file, sha256_file
from recommender.index import VectorIndex
from recommender.index.lexical import LexicalModel
from recommender.index.words import WordTable
from recommender.ingest.text import TextRecipe
from recommender.storage.carry import Carried, carried_from, carried_lexical
from recommender.storage.store import ArticleStore

# 2: lexical model and matrix in every snapshot; 3: key-term word table; 4: related lists;
# 5: related lists store each story's card once
FORMAT_VERSION = 5
CURRENT_FILE = "CURRENT"
SNAPSHOTS_DIR = "snapshots"
STORE_FILE = "store.sqlite"
CACHE_FILE = "embeddings.sqlite"
MANIFEST_FILE = "manifest.json"
KEEP_SNAPSHOTS = 3
_BUILDING_PREFIX = ".building-"
BUILD_LOCK_FILE = ".build.lock"


class SnapshotError(RecommenderError):
    """A snapshot is missing, incomplete or corrupted."""

    exit_code = 6


@dataclass(frozen=True)
class Manifest:
    """What a snapshot holds; written as ``manifest.json``."""

    name: str
    model: str
    model_name: str
    dimension: int
    index_type: str
    article_count: int
    store_seq: int
    built_at: str
    build_seconds: float
    checksums: dict[str, str]
    text_recipe: dict[str, Any]
    format_version: int = FORMAT_VERSION
    list_depth: int = 0  # results stored per article (``lists``); 0: none
    carried_from: str = ""  # the snapshot this one was built on (``carry``); "": from scratch
    from_scratch_because: str = ""  # why it was not built on the serving snapshot

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


@dataclass
class Snapshot:
    """A loaded, verified snapshot: its manifest, its store copy and its vector index."""

    path: Path
    manifest: Manifest
    store: ArticleStore
    index: VectorIndex
    lexical: LexicalModel
    lexical_matrix: sp.csr_matrix
    words: WordTable  # rows aligned with the index's ids, like ``lexical_matrix``

    def close(self) -> None:
        """Release the store connection."""
        self.store.close()


# What ``build_snapshot`` names a snapshot (``20201203T101500123456-s7``). A name read from a
# pointer file (local, or a remote one a replica mirrors) becomes a path only once it matches:
# ``../../elsewhere`` in a remote CURRENT made a mirror delete a directory outside it.
SNAPSHOT_NAME = re.compile(r"\d{8}T\d{12}-s\d{1,12}")


def checked_name(name: str, where: str) -> str:
    """``name`` if it is a snapshot name, else SnapshotError naming ``where`` it was read."""
    if not SNAPSHOT_NAME.fullmatch(name):
        raise SnapshotError(f"{where} names {name[:80]!r}, which is not a snapshot name")
    return name


def current_name(index_dir: str | Path) -> str | None:
    """Name of the serving snapshot, or None when nothing was published yet."""
    pointer = Path(index_dir) / CURRENT_FILE
    if not pointer.is_file():
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    return checked_name(name, str(pointer)) if name else None


def build_snapshot(
    index_dir: str | Path,
    store: ArticleStore,
    *,
    model: str,
    model_name: str,
    dimension: int,
    index_type: str = "auto",
    text_recipe: dict[str, Any] | None = None,
    keep: int = KEEP_SNAPSHOTS,
    list_depth: int = 0,
    extras: Callable[[Path, Carried | None], list[Path]] | None = None,
    base: Path | None = None,
    no_base_because: str = "",
) -> Manifest:
    """Build a complete snapshot from the working store and publish it atomically.

    ``extras`` adds files computed from the built snapshot (the related lists): it gets the
    snapshot's directory, readable with ``open_snapshot(path, verify=False)``, and what it is
    built on (``carry``), and returns the files it wrote, which are checksummed with the rest.
    ``base``, the serving snapshot's directory (sound: the caller checked it), is built on
    when it was built the same way (``carry.carried_from``); None builds everything from
    scratch, for the reason ``no_base_because`` (recorded in the manifest).
    """
    root = Path(index_dir)
    snapshots = root / SNAPSHOTS_DIR
    snapshots.mkdir(parents=True, exist_ok=True)
    with open(root / BUILD_LOCK_FILE, "a+b") as lock:
        # one build at a time per index; any ``.building-*`` seen while holding the lock was
        # left by a build that died (killed, power cut): remove it now, not an hour later
        fcntl.flock(lock, fcntl.LOCK_EX)
        for leftover in snapshots.glob(f"{_BUILDING_PREFIX}*"):
            shutil.rmtree(leftover, ignore_errors=True)
        return _build_locked(root, store, model=model, model_name=model_name,
                             dimension=dimension, index_type=index_type,
                             text_recipe=text_recipe, keep=keep, list_depth=list_depth,
                             extras=extras, base=base,
                             no_base_because=no_base_because)  # fmt: skip


def _build_locked(
    root: Path,
    store: ArticleStore,
    *,
    model: str,
    model_name: str,
    dimension: int,
    index_type: str,
    text_recipe: dict[str, Any] | None,
    keep: int,
    list_depth: int,
    extras: Callable[[Path, Carried | None], list[Path]] | None,
    base: Path | None,
    no_base_because: str,
) -> Manifest:
    started = time.perf_counter()
    snapshots = root / SNAPSHOTS_DIR
    seq = store.seq
    name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-s{seq}"
    building = snapshots / f"{_BUILDING_PREFIX}{name}"
    building.mkdir()
    try:
        store.backup_to(building / STORE_FILE)
        copy = ArticleStore(building / STORE_FILE, read_only=True)
        try:
            ids, vectors = copy.vectors(model)
            missing = len(copy) - len(ids)
        finally:
            copy.close()
        if missing:
            raise SnapshotError(
                f"{missing} stored articles have no vector for model {model}; "
                "index them with this model first"
            )
        index = VectorIndex.build(ids, vectors, index_type, dimension=dimension)
        files = [building / STORE_FILE, *index.save(building)]
        same = {"format_version": FORMAT_VERSION, "model": model, "text_recipe": text_recipe or {},
                "list_depth": list_depth if extras else 0}  # fmt: skip
        carried, why = carried_from(
            base, building / STORE_FILE, manifest=same, index_spec=index.spec, count=len(ids)
        )
        why = no_base_because if base is None and no_base_because else why
        files += _build_lexical(building, ids, TextRecipe(**(text_recipe or {})), carried)
        manifest = Manifest(
            name=name,
            model=model,
            model_name=model_name,
            dimension=dimension,
            index_type=index.spec,
            article_count=len(ids),
            store_seq=seq,
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
            build_seconds=0.0,
            checksums={},
            text_recipe=text_recipe or {},
            list_depth=list_depth if extras is not None else 0,
            carried_from=carried.name if carried is not None else "",
            from_scratch_because=why,
        )
        manifest_path = building / MANIFEST_FILE
        if extras is not None:
            manifest_path.write_text(json.dumps(manifest.to_dict()), encoding="utf-8")
            files += extras(building, carried)
        manifest = dataclasses.replace(
            manifest,
            build_seconds=round(time.perf_counter() - started, 3),
            checksums={f.name: sha256_file(f) for f in files},
        )
        manifest_path.write_text(json.dumps(manifest.to_dict(), indent=2), encoding="utf-8")
        for path in [*files, manifest_path]:
            fsync_file(path)
        final = snapshots / name
        building.rename(final)
        fsync_dir(snapshots)
        _publish(root, name)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    prune(root, keep)
    return manifest


def _build_lexical(
    directory: Path, ids: np.ndarray, recipe: TextRecipe, carried: Carried | None
) -> list[Path]:
    """The lexical model, matrix and word table of the snapshot's articles, rows in the order
    of ``ids``: fit on them, or carried over from the snapshot built on."""
    copy = ArticleStore(directory / STORE_FILE, read_only=True)
    try:
        if carried is not None:
            model, matrix, words = carried_lexical(carried, copy, ids, recipe)
            return [*model.save(directory, matrix), words.save(directory)]
        texts_by_id = {
            s.int_id: recipe.text(s.article.title, s.article.lead, s.article.body)
            for s in copy.iter_articles()
        }
    finally:
        copy.close()
    model, matrix, words = LexicalModel.fit_with_words([texts_by_id[int(i)] for i in ids])
    return [*model.save(directory, matrix), words.save(directory)]


def _publish(root: Path, name: str) -> None:
    temporary = root / f"{CURRENT_FILE}.tmp"
    temporary.write_text(name + "\n", encoding="utf-8")
    fsync_file(temporary)
    os.replace(temporary, root / CURRENT_FILE)
    fsync_dir(root)


def prune(index_dir: str | Path, keep: int = KEEP_SNAPSHOTS) -> list[str]:
    """Delete all but the newest ``keep`` snapshots (never the serving one) and dead builds."""
    root = Path(index_dir)
    snapshots = root / SNAPSHOTS_DIR
    if not snapshots.is_dir():
        return []
    serving = current_name(root)
    removed = []
    for leftover in snapshots.glob(f"{_BUILDING_PREFIX}*"):
        # a build killed mid-way; a live build in another process is a few minutes old at most
        if time.time() - leftover.stat().st_mtime > 3600 or keep == 0:
            shutil.rmtree(leftover, ignore_errors=True)
            removed.append(leftover.name)
    complete = sorted(p.name for p in snapshots.iterdir() if SNAPSHOT_NAME.fullmatch(p.name))
    for name in complete[: max(0, len(complete) - max(keep, 1))]:
        if name != serving:
            shutil.rmtree(snapshots / name, ignore_errors=True)
            removed.append(name)
    return removed


def read_manifest(path: Path) -> Manifest:
    """The manifest of a snapshot directory."""
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise SnapshotError(f"snapshot {path} has no {MANIFEST_FILE}: it is incomplete")
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
        return Manifest(**data)
    except (json.JSONDecodeError, TypeError) as exc:
        raise SnapshotError(f"{manifest_path} is not a valid manifest: {exc}") from None


def load_snapshot(index_dir: str | Path, name: str | None = None, *, mmap: bool = True) -> Snapshot:
    """Load and verify the serving snapshot (or the one named): checksums must match."""
    root = Path(index_dir)
    if not root.is_dir():
        raise NotFoundError(f"index directory {root} does not exist; run `recommender index`")
    name = name or current_name(root)
    if name is None:
        raise NotFoundError(f"{root} has no published snapshot yet; run `recommender index`")
    path = root / SNAPSHOTS_DIR / name
    if not path.is_dir():
        raise SnapshotError(f"{root / CURRENT_FILE} names {name}, which does not exist")
    return open_snapshot(path, mmap=mmap)


def load_newest_good(index_dir: str | Path) -> tuple[Snapshot, list[str]]:
    """The snapshot ``CURRENT`` names or, when it cannot be loaded (corrupt, incomplete, an
    older format), the newest one that can: a server then starts on the last good index
    instead of refusing to. Returns the snapshot and the problems met on the way;
    ``NotFoundError`` when nothing is published yet, ``SnapshotError`` when none loads."""
    root = Path(index_dir)
    if not root.is_dir():
        raise NotFoundError(f"index directory {root} does not exist; run `recommender index`")
    current = current_name(root)
    if current is None:
        raise NotFoundError(f"{root} has no published snapshot yet; run `recommender index`")
    folder = root / SNAPSHOTS_DIR
    others = sorted(
        (p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
        reverse=True,  # names start with their build time
    )
    problems: list[str] = []
    for name in [current, *(n for n in others if n != current)]:
        try:
            return open_snapshot(folder / name), problems
        except SnapshotError as exc:
            problems.append(str(exc))
    raise SnapshotError(f"no snapshot in {folder} can be loaded: {'; '.join(problems)}")


def snapshot_problem(path: Path) -> str | None:
    """Why the snapshot in ``path`` cannot serve (manifest, format, checksums), or None."""
    try:
        manifest = read_manifest(path)
        if manifest.format_version != FORMAT_VERSION:
            return f"format {manifest.format_version}, not {FORMAT_VERSION}"
        for filename, expected in manifest.checksums.items():
            file = path / filename
            if not file.is_file():
                return f"{filename} is missing"
            if sha256_file(file) != expected:
                return f"{filename} does not match its checksum"
    except SnapshotError as exc:
        return str(exc)
    return None


def open_snapshot(path: Path, *, mmap: bool = True, verify: bool = True) -> Snapshot:
    """Load the snapshot in ``path``, checking every file against its checksum (``verify``;
    off only for a snapshot being built, whose checksums are not written yet)."""
    name = path.name
    manifest = read_manifest(path)
    if manifest.format_version != FORMAT_VERSION:
        raise SnapshotError(
            f"snapshot {name} has format {manifest.format_version}, this release reads "
            f"{FORMAT_VERSION}: run `recommender index` on {path.parent.parent} to rebuild it"
        )
    for filename, expected in manifest.checksums.items() if verify else ():
        file = path / filename
        if not file.is_file():
            raise SnapshotError(f"snapshot {name} is missing {filename}")
        actual = sha256_file(file)
        if actual != expected:
            raise SnapshotError(
                f"snapshot {name} is corrupted: {filename} has SHA-256 {actual[:12]}..., "
                f"the manifest says {expected[:12]}..."
            )
    try:
        index = VectorIndex.load(path, mmap=mmap)
        lexical, matrix = LexicalModel.load(path)
        words = WordTable.load(path)
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        raise SnapshotError(f"snapshot {name}: cannot read the index: {exc}") from None
    store = ArticleStore(path / STORE_FILE, read_only=True)
    return Snapshot(path, manifest, store, index, lexical, matrix, words)
