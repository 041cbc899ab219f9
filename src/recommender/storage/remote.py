"""Snapshots on shared storage: publish to, and serve from, an fsspec URL.

Who writes and who reads:

- **One writer** keeps the working store (SQLite) on its own disk: ``recommender index
  --index-dir URL`` indexes into a local work directory (``--work-dir``, default under
  ``~/.cache/recommender/work/``) and then publishes; ``recommender publish --index-dir DIR
  --to URL`` publishes a writer's directory (a ``serve`` taking live writes, say), building a
  snapshot first when the store changed since the last one.
- **Publishing** uploads the snapshot's files under ``URL/snapshots/NAME/`` first and the
  ``CURRENT`` pointer last, so a reader never sees a pointer to a partial snapshot.
- **Readers** (``serve --index-dir URL``) mirror the snapshot ``CURRENT`` names into a local
  directory (``--mirror-dir``), verify every checksum before it may serve, then switch their
  local ``CURRENT``: the engine loads it as it loads any new snapshot, without a restart.
  Readers are read-only; writes go to the writer and reach them with its next publish.

Any fsspec URL works where its backend is installed (``s3://`` with s3fs, ``gs://`` with
gcsfs, ``az://`` with adlfs, ...); ``file://`` and plain paths need nothing more.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from recommender.errors import InvalidInputError, NotFoundError
from recommender.storage.snapshot import (
    CURRENT_FILE,
    SNAPSHOT_NAME,
    SNAPSHOTS_DIR,
    _publish,
    checked_name,
    current_name,
    prune,
    read_manifest,
    snapshot_problem,
)

_log = logging.getLogger("recommender.remote")
KEEP_REMOTE = 3  # snapshots kept at the URL (readers may still be downloading an older one)
_DOWNLOADING = ".downloading-"


def is_url(location: str) -> bool:
    """Whether ``location`` is an fsspec URL (``scheme://...``) rather than a local path."""
    return "://" in location


def _filesystem(url: str) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec comes with the default dependencies
        raise InvalidInputError("URLs need fsspec: pip install fsspec", field="index_dir") from None
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise InvalidInputError(
            f"{url}: {exc} (install the fsspec backend for this scheme)", field="index_dir"
        ) from None
    return fs, str(path).rstrip("/")


def check_url(url: str) -> None:
    """Refuse a URL whose fsspec backend is not installed, before any work."""
    _filesystem(url)


def local_dir_for(url: str, kind: str) -> Path:
    """The default local directory of a URL: ``~/.cache/recommender/<kind>/<digest>``."""
    base = Path(os.environ.get("RECOMMENDER_CACHE", Path.home() / ".cache" / "recommender"))
    return base / kind / hashlib.sha256(url.encode()).hexdigest()[:16]


def publish(local_root: Path, url: str, keep: int = KEEP_REMOTE) -> str:
    """Upload the snapshot ``local_root`` serves to ``url``: files first, ``CURRENT`` last.
    Returns its name. Older snapshots at the URL beyond ``keep`` are removed."""
    name = current_name(local_root)
    if name is None:
        raise NotFoundError(f"{local_root} has no published snapshot to upload")
    source = local_root / SNAPSHOTS_DIR / name
    problem = snapshot_problem(source)
    if problem is not None:
        raise InvalidInputError(
            f"snapshot {name} cannot be published: {problem}", field="index_dir"
        )
    fs, root = _filesystem(url)
    target = f"{root}/{SNAPSHOTS_DIR}/{name}"
    copy_problem = _remote_problem(fs, target, source) if fs.exists(target) else "absent"
    if copy_problem is not None:  # absent, partial or damaged there: upload it (again)
        if copy_problem != "absent":
            _log.warning("the copy of %s at %s is damaged (%s): uploading it again",
                         name, url, copy_problem)  # fmt: skip
            fs.rm(target, recursive=True)
        staging = f"{root}/{SNAPSHOTS_DIR}/{_DOWNLOADING}{name}"
        if fs.exists(staging):  # an upload interrupted before: start it again
            fs.rm(staging, recursive=True)
        fs.put(str(source), staging, recursive=True)
        fs.mv(staging, target, recursive=True)
    fs.pipe_file(f"{root}/{CURRENT_FILE}.tmp", (name + "\n").encode())
    fs.mv(f"{root}/{CURRENT_FILE}.tmp", f"{root}/{CURRENT_FILE}")
    _prune_remote(fs, root, name, keep)
    return name


def _remote_problem(fs: Any, target: str, source: Path) -> str | None:
    """Why the copy at ``target`` does not equal the local snapshot ``source`` (every file
    read back and checksummed against the local manifest), or None. Reading it back costs a
    download; publishing is where a damaged shared copy gets repaired, so it is paid here."""
    manifest = read_manifest(source)
    for filename, expected in {**manifest.checksums, "manifest.json": ""}.items():
        remote_file = f"{target}/{filename}"
        if not fs.exists(remote_file):
            return f"{filename} is missing"
        if not expected:
            continue
        digest = hashlib.sha256()
        with fs.open(remote_file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != expected:
            return f"{filename} does not match its checksum"
    return None


def _prune_remote(fs: Any, root: str, serving: str, keep: int) -> None:
    names = sorted(
        Path(p).name for p in fs.ls(f"{root}/{SNAPSHOTS_DIR}", detail=False)
        if SNAPSHOT_NAME.fullmatch(Path(p).name)
    )  # fmt: skip
    for name in names[: max(0, len(names) - max(keep, 1))]:
        if name != serving:
            fs.rm(f"{root}/{SNAPSHOTS_DIR}/{name}", recursive=True)


def remote_current(url: str) -> str | None:
    """The snapshot name ``CURRENT`` at ``url`` holds, or None when there is none yet."""
    fs, root = _filesystem(url)
    try:
        raw = fs.cat_file(f"{root}/{CURRENT_FILE}")
    except FileNotFoundError:
        return None
    name = raw.decode("utf-8", errors="replace").strip()
    return checked_name(name, f"{url}/{CURRENT_FILE}") if name else None


def mirror(url: str, local_root: Path, keep: int = 2, verify_local: bool = False) -> str | None:
    """Bring ``local_root`` to the snapshot ``url`` serves: download it if new, verify every
    checksum, then switch the local ``CURRENT``. Returns the name switched to, or None when
    nothing changed. A download that fails verification is removed and raises.

    ``verify_local``: also check the local copy of a snapshot already mirrored (a mirror does
    it once when it starts), and download it again if it is damaged: a flipped byte there
    left a restarted replica NOT_SERVING although the shared copy was good."""
    name = remote_current(url)
    if name is None:
        return None
    snapshots = local_root / SNAPSHOTS_DIR
    final = snapshots / name
    if name == current_name(local_root):
        if not verify_local or snapshot_problem(final) is None:
            return None
        _log.warning("the local copy of %s is damaged: mirroring it again", name)
        shutil.rmtree(final, ignore_errors=True)
    fs, root = _filesystem(url)
    snapshots.mkdir(parents=True, exist_ok=True)
    if not final.is_dir():
        partial = snapshots / f"{_DOWNLOADING}{name}"
        shutil.rmtree(partial, ignore_errors=True)
        fs.get(f"{root}/{SNAPSHOTS_DIR}/{name}", str(partial), recursive=True)
        problem = snapshot_problem(partial)
        if problem is not None:
            shutil.rmtree(partial, ignore_errors=True)
            raise InvalidInputError(f"snapshot {name} at {url}: {problem}", field="index_dir")
        os.replace(partial, final)
    _publish(local_root, name)
    prune(local_root, keep=keep)
    return name


class Mirror:
    """Keeps a local directory mirroring a URL, checking every ``interval`` seconds."""

    def __init__(self, url: str, local_root: Path, interval: float) -> None:
        self.url = url
        self.local_root = local_root
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mirror", daemon=True)

    def start(self) -> Mirror:
        self.local_root.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        said = ""
        verified = False  # the local copy is checked once, the first time the URL answers
        while not self._stop.is_set():
            try:
                name = mirror(self.url, self.local_root, verify_local=not verified)
                verified = True
                if name is not None:
                    _log.info("mirrored snapshot %s from %s", name, self.url)
                said = ""
            except Exception as exc:  # keep serving what is mirrored; say each problem once
                if str(exc) != said:
                    _log.warning("cannot mirror %s yet: %s", self.url, exc)
                    said = str(exc)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
