"""Sections of a doc that a benchmark owns, between its begin and end markers: written in
place by that benchmark, kept as they are when another one rewrites the rest of the doc."""

from __future__ import annotations

from pathlib import Path


def replace_section(path: Path, begin: str, end: str, section: str) -> None:
    """Replace the text from ``begin`` to ``end`` (markers included in ``section``), or
    append ``section`` when the doc has none yet; the rest of the doc is left as it is."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if begin in text and end in text:
        before, rest = text.split(begin, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


def kept_sections(path: Path, markers: list[tuple[str, str]]) -> list[str]:
    """The sections between each (begin, end) pair that ``path`` holds, markers included."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    return [
        text[text.index(begin) : text.index(end) + len(end)]
        for begin, end in markers
        if begin in text and end in text
    ]
