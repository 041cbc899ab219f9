"""What one run of the index job did: counts, and the records it has to tell about
(rejections, ids read twice, feed items that replaced a stored article)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from recommender.ingest.records import Duplicate, Rejection, echo

MAX_NOTES = 100  # duplicates and replacements described one by one in a run's summary


@dataclass(frozen=True)
class Replaced:
    """A feed or page item whose id names an article stored by an earlier run from elsewhere
    (another URL): the item read (``file:line``) wins, as a duplicate id within a run does."""

    id: str
    file: str
    line: int
    stored_source: str | None
    stored_url: str | None

    def __str__(self) -> str:
        return (
            f"{self.file}:{self.line}: id {echo(self.id)} replaced a stored article from "
            f"elsewhere (source {echo(self.stored_source or '')}, url "
            f"{echo(self.stored_url or '')}); the item read wins"
        )


@dataclass
class IndexSummary:
    """What one run did."""

    read: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    rejected: int = 0
    embedded: int = 0
    embedded_on_ray: int = 0  # of the texts embedded, those sent to Ray (``--engine ray``)
    articles: int = 0
    snapshot: str | None = None
    snapshot_built: bool = False
    rejects_file: str | None = None
    duplicates: int = 0  # ids read again in this run (the later record won)
    replaced: int = 0  # feed/page items that replaced a stored article from elsewhere
    seconds: float = 0.0
    lists_seconds: float = 0.0  # of ``seconds``: computing the stored lists
    lists_computed: int = 0  # lists computed for the new snapshot
    lists_carried: int = 0  # lists taken over unchanged from the snapshot built on
    lists_on_ray: int = 0  # of the lists computed, those computed on Ray (``--engine ray``)
    built_on: str = ""  # the serving snapshot the new one was built on ("": from scratch)
    from_scratch_because: str = ""  # why it was not built on the serving snapshot
    published_to: str | None = None  # the URL the snapshot was uploaded to (``remote``)
    rejections: list[Rejection] = field(default_factory=list, repr=False)
    duplicate_notes: list[Duplicate] = field(default_factory=list, repr=False)
    replaced_notes: list[Replaced] = field(default_factory=list, repr=False)

    def note_duplicate(self, duplicate: Duplicate) -> None:
        self.duplicates += 1
        if len(self.duplicate_notes) < MAX_NOTES:
            self.duplicate_notes.append(duplicate)

    def note_replaced(self, replaced: Replaced) -> None:
        self.replaced += 1
        if len(self.replaced_notes) < MAX_NOTES:
            self.replaced_notes.append(replaced)

    def notes(self, shown: int = 20) -> list[str]:
        """The lines a command prints about this run (at most ``shown`` of each kind)."""
        lines = [f"duplicate: {d}" for d in self.duplicate_notes[:shown]]
        if self.duplicates > shown:
            lines.append(f"... and {self.duplicates - shown} more duplicate ids")
        lines += [f"replaced: {r}" for r in self.replaced_notes[:shown]]
        if self.replaced > shown:
            lines.append(f"... and {self.replaced - shown} more replaced articles")
        lines += [f"rejected: {r}" for r in self.rejections[:shown]]
        if self.rejected > shown:
            lines.append(f"... and {self.rejected - shown} more in {self.rejects_file}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without the records told about one by one)."""
        data = asdict(self)
        for name in ("rejections", "duplicate_notes", "replaced_notes"):
            data.pop(name)
        return data
