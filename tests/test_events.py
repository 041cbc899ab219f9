"""The reader event log (issue 26, events in): checked records, a durable, compact, shared
SQLite log with hashed reader keys, retention, forgetting a reader, importers (JSONL and
MIND's behaviors.tsv) and the CLI. No model: these run in ``make unit-fast``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from recommender.cli.main import main
from recommender.errors import InvalidInputError
from recommender.events.imports import import_events, mind_time
from recommender.events.log import EVENTS_FILE, HOME_ID, EventLog
from recommender.events.records import event_from_fields, event_from_json
from recommender.storage.schema import int_id

NOW = time.time()
READER = "cookie-7f3a9c2e-reader"


def impression(reader: str = READER, at: float = NOW, ids=("a", "b", "c")):
    return event_from_fields("impression", reader, at, "seed", ids=list(ids))


def click(reader: str = READER, at: float = NOW, position: int = 1):
    return event_from_fields("click", reader, at, "seed", "b", position=position)


@pytest.mark.parametrize(
    ("record", "field", "words"),
    [
        ({"kind": "like", "reader": "r", "target": "a"}, "events[0].kind", "one of"),
        ({"kind": "read", "target": "a"}, "events[0].reader", "reader key"),
        ({"kind": "read", "reader": "r" * 300, "target": "a"}, "events[0].reader", "256"),
        ({"kind": "read", "reader": "r"}, "events[0].target", "required"),
        ({"kind": "impression", "reader": "r", "source": "s"}, "events[0].ids", "1-100"),
        ({"kind": "impression", "reader": "r", "source": "s", "ids": ["x"] * 101},
         "events[0].ids", "1-100"),
        ({"kind": "impression", "reader": "r", "source": "s", "ids": ["ok", "bad\n"]},
         "events[0].ids[1]", "printable"),
        ({"kind": "click", "reader": "r", "source": "s", "target": "t"},
         "events[0].position", "0-99"),
        ({"kind": "click", "reader": "r", "source": "s", "target": "t", "position": -3},
         "events[0].position", "0-99"),
        ({"kind": "click", "reader": "r", "source": "s", "target": "t", "position": "2"},
         "events[0].position", "integer"),
        ({"kind": "read", "reader": "r", "target": "a", "position": 2},
         "events[0].position", "only a click"),
        ({"kind": "read", "reader": "r", "target": "a", "time": "yesterday"},
         "events[0].time", "ISO 8601"),
        ({"kind": "read", "reader": "r", "target": "a", "time": "2999-01-01"},
         "events[0].time", "tomorrow"),
        ({"kind": "read", "reader": "r", "target": "a", "ip": "1.2.3.4"}, "events[0]", "unknown"),
        (["read"], "events[0]", "object"),
    ],
)  # fmt: skip
def test_a_bad_event_names_its_field(record, field, words):
    with pytest.raises(InvalidInputError) as raised:
        event_from_json(record, "events[0]")
    assert raised.value.field == field
    assert words in str(raised.value)


def test_events_are_stored_compactly_with_hashed_readers(tmp_path):
    log = EventLog(tmp_path)
    read = event_from_fields("read", READER, NOW, target="seed")
    assert log.append([impression(), click(), read]) == 3
    assert log.counts() == {"impression": 1, "click": 1, "read": 1}
    stored = list(log.events())
    assert [e.kind for e in stored] == ["impression", "click", "read"]
    assert stored[0].ids == (int_id("a"), int_id("b"), int_id("c"))
    assert stored[1].position == 1 and stored[1].target == int_id("b")
    assert {e.reader for e in stored} == {log.reader_hash(READER)}
    assert len(log.reader_hash(READER)) == 16
    log.close()
    # the site's key is nowhere on disk, and another index's secret hashes it differently
    for path in tmp_path.iterdir():
        assert READER.encode() not in path.read_bytes(), path.name
    assert EventLog(tmp_path / "other").reader_hash(READER) != stored[0].reader
    front = event_from_fields("impression", READER, NOW, "home", ids=["a"])
    reopened = EventLog(tmp_path)
    reopened.append([front])
    assert list(reopened.events())[-1].source == HOME_ID
    assert reopened.counts()["impression"] == 2


def test_forget_deletes_one_reader_and_nothing_else(tmp_path):
    log = EventLog(tmp_path)
    log.append([impression(), click(), impression("someone-else"), click("someone-else")])
    assert log.forget(READER) == 2
    assert log.counts() == {"impression": 1, "click": 1, "read": 0}
    assert list(log.events(reader=READER)) == []
    assert len(list(log.events(reader="someone-else"))) == 2
    assert log.forget(READER) == 0


def test_retention_deletes_old_events(tmp_path):
    log = EventLog(tmp_path)
    day = 86400
    log.append([impression(at=NOW - 40 * day), impression(at=NOW - 10 * day), impression()])
    assert log.prune() == 1  # default 30 days
    log.set_retention(5)
    assert log.counts()["impression"] == 1
    log.set_retention(0)  # for ever
    log.append([impression(at=NOW - 4000 * day)])
    assert log.prune() == 0 and log.counts()["impression"] == 2
    assert EventLog(tmp_path).retention_days == 0  # a setting every process sees


def test_concurrent_appends_are_committed_together(tmp_path):
    log = EventLog(tmp_path)
    commits = []
    original = log._commit

    def counting(rows):
        commits.append(len(rows))
        time.sleep(0.01)  # an fsync's time, so callers pile up as they do under load
        original(rows)

    log._commit = counting  # type: ignore[method-assign]
    barrier = threading.Barrier(40)

    def one(n: int) -> None:
        barrier.wait()
        assert log.append([impression(f"reader-{n}")]) == 1

    threads = [threading.Thread(target=one, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(commits) == 40 and log.counts()["impression"] == 40
    assert len(commits) < 20, commits  # batched: far fewer transactions than calls


def test_an_acknowledged_event_survives_a_killed_process(tmp_path):
    script = f"""
import sys, time
from recommender.events.log import EventLog
from recommender.events.records import event_from_fields
log = EventLog({str(tmp_path)!r})
for n in range(1000000):
    log.append([event_from_fields("read", "r", time.time(), target=f"a{{n}}")])
    print(n, flush=True)
"""
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    acknowledged = -1
    while acknowledged < 200:
        acknowledged = int(process.stdout.readline())
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    stored = EventLog(tmp_path).counts()["read"]
    assert stored >= acknowledged + 1


MIND = (
    "1\tU1\t11/15/2019 8:55:22 AM\tN1 N2\tN10-0 N11-1 N12-0\n"
    "2\tU1\t11/15/2019 9:10:00 AM\tN1 N2\tN13-1 N14-1\n"
    "3\tU2\t11/15/2019 10:00:00 AM\t\tN10-0 N15-0\n"
    "4\tU3\tnot a time\tN1\tN10-1\n"
    "5\tU3\t11/15/2019 10:00:00 AM\tN1\n"
)


def test_mind_behaviors_become_impressions_clicks_and_reads(tmp_path):
    path = tmp_path / "behaviors.tsv"
    path.write_text(MIND, encoding="utf-8")
    log = EventLog(tmp_path / "index")
    log.set_retention(0)
    stored, rejections = import_events(log, path)
    assert [(r.line, r.field) for r in rejections] == [(4, "time"), (5, "line")]
    assert "behaviors.tsv:4" in str(rejections[0])
    # U1's history read once, not once per impression; three impressions; three clicks
    assert log.counts() == {"impression": 3, "click": 3, "read": 2} and stored == 8
    clicks = [e for e in log.events() if e.kind == "click"]
    assert [(c.target, c.position) for c in clicks] == [
        (int_id("N11"), 1), (int_id("N13"), 0), (int_id("N14"), 1)
    ]  # fmt: skip
    reads = [e for e in log.events() if e.kind == "read"]
    assert {r.at for r in reads} == {mind_time("11/15/2019 8:55:22 AM") - 1}


def test_jsonl_import_keeps_valid_lines_and_names_bad_ones(tmp_path):
    path = tmp_path / "events.jsonl"
    lines = [
        {"kind": "impression", "reader": "r1", "source": "home", "ids": ["a", "b"]},
        {"kind": "click", "reader": "r1", "source": "home", "target": "b", "position": 9000},
        "{not json",
        {"kind": "read", "reader": "r1", "target": "b", "time": "2026-12-01T10:00:00Z"},
    ]
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    log = EventLog(tmp_path / "index")
    log.set_retention(0)
    stored, rejections = import_events(log, path)
    assert stored == 2
    assert [(r.line, r.field) for r in rejections] == [(2, "event.position"), (3, "line")]


def test_cli_imports_counts_and_forgets(tmp_path, capsys):
    index_dir = tmp_path / "index"
    path = tmp_path / "behaviors.tsv"
    path.write_text(MIND.split("4\t")[0], encoding="utf-8")
    assert main(["events", "import", str(path), "--index-dir", str(index_dir),
                 "--retention-days", "0"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["stored"] == 8 and out["events"]["click"] == 3
    assert main(["forget", "--reader", "U1", "--index-dir", str(index_dir)]) == 0
    assert json.loads(capsys.readouterr().out) == {"forgotten": 7}
    assert main(["events", "stats", "--index-dir", str(index_dir)]) == 0
    assert json.loads(capsys.readouterr().out)["events"] == {"impression": 1, "click": 0,
                                                             "read": 0}  # fmt: skip
    # a file with bad lines: the good ones land, the exit code says some did not
    assert main(["events", "import", str(tmp_path / "behaviors.tsv"), "--index-dir",
                 str(index_dir), "--format", "jsonl"]) == 2  # fmt: skip
    assert "behaviors.tsv:1" in capsys.readouterr().err
    assert Path(index_dir / EVENTS_FILE).exists()


def test_a_long_mind_impression_stays_one_impression(tmp_path):
    shown = " ".join(f"N{n}-{int(n == 250)}" for n in range(300))
    path = tmp_path / "behaviors.tsv"
    path.write_text(f"1\tU9\t11/15/2019 8:55:22 AM\tN1\t{shown}\n", encoding="utf-8")
    log = EventLog(tmp_path / "index")
    log.set_retention(0)
    assert import_events(log, path) == (3, [])  # a read, one impression, one click
    impression, click = [e for e in log.events() if e.kind != "read"]
    assert len(impression.ids) == 300 and click.position == 250
    # what a browser sends is held to a list's length
    with pytest.raises(InvalidInputError, match="1-100"):
        event_from_fields("impression", "r", NOW, "home", ids=[f"N{n}" for n in range(300)])
