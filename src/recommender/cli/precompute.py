"""Export of the stored lists for static sites: ``recommender precompute``.

A site that renders "read also" into the page when it publishes (a static site generator, a
CMS that bakes pages) reads one JSON line per article::

    {"id": "...", "updated": "2026-11-30T09:00:00+00:00", "results": [...],
     "other_languages": [...]}

``results`` and ``other_languages`` are what ``Related`` by id returns with default options
(``RelatedResponse.to_dict``). With ``since``, only the lists that changed at or after it are
written, so a site re-renders only the pages whose links changed.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from recommender.engine import Engine
from recommender.storage.schema import int_id


def lists(engine: Engine, k: int, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Each live article's default list of ``k``, with when it last changed (lists changed
    before ``since`` left out). Articles without a stored list are ranked live."""
    space = engine.space
    threshold = since.timestamp() if since is not None else None
    for article_id in sorted(space.ids[row] for row in space.row_of.values()):
        stored = engine.live.lists.get(int_id(article_id)) if k <= engine.live.lists.depth else None
        updated = stored.updated if stored is not None else datetime.now(UTC).timestamp()
        if threshold is not None and updated < threshold:
            continue
        response = (
            stored.response(k) if stored is not None else engine.related(article_id=article_id, k=k)
        )
        yield {
            "id": article_id,
            "updated": datetime.fromtimestamp(updated, UTC).isoformat(timespec="seconds"),
            **response.to_dict(),
        }


def export(engine: Engine, out: Path, k: int, since: datetime | None = None) -> int:
    """Write ``lists`` as JSON lines to ``out`` (gzip when it ends in .gz); returns the count."""
    written = 0
    temporary = out.with_name(out.name + ".tmp")
    with _open_text(temporary, gzipped=out.suffix == ".gz") as handle:
        for entry in lists(engine, k, since):
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
            written += 1
    temporary.replace(out)  # a reader never sees half a file
    return written


def _open_text(path: Path, *, gzipped: bool) -> IO[str]:
    if gzipped:
        return gzip.open(path, "wt", encoding="utf-8")
    return path.open("w", encoding="utf-8")
