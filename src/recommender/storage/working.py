"""The working store of an index directory: the SQLite file writes go to, beside the
snapshots (``snapshot``) it is built into."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from recommender.errors import DiskFullError, InvalidInputError, StoreError
from recommender.files import disk_full
from recommender.storage.snapshot import SNAPSHOTS_DIR, STORE_FILE, current_name
from recommender.storage.store import ArticleStore


def working_store(index_dir: str | Path) -> ArticleStore:
    """The writable working store of an index directory (created when missing); a corrupt
    one is a ``StoreError`` that says how to restore it from the serving snapshot."""
    root = Path(index_dir)
    if root.exists() and not root.is_dir():
        raise InvalidInputError(f"{root} is not a directory", field="index_dir")
    try:
        return ArticleStore(root / STORE_FILE)
    except sqlite3.DatabaseError as exc:
        if disk_full(root):  # SQLite cannot make its -shm/-wal files: no damage to repair
            raise DiskFullError(
                f"{root}: the disk is full ({exc}); writes are refused until space is freed"
            ) from None
        name = current_name(root)
        restore = (
            f"restore it from the serving snapshot (writes since {name} are lost): "
            f"mv {root / STORE_FILE} {root / STORE_FILE}.corrupt && "
            f"rm -f {root / STORE_FILE}-wal {root / STORE_FILE}-shm && "
            f"cp {root / SNAPSHOTS_DIR / name / STORE_FILE} {root / STORE_FILE}"
            if name
            else "move it aside and run `recommender index` again"
        )
        raise StoreError(
            f"the working store {root / STORE_FILE} is unreadable ({exc}); {restore}"
        ) from None
