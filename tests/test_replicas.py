"""Snapshots on shared storage (a ``file://`` URL): publish, mirror, two replicas converging."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import grpc
import pytest
from conftest import SAMPLE, listening_lines, listening_port

from recommender.client import RecommenderClient
from recommender.storage import remote
from recommender.storage.snapshot import SnapshotError, current_name, snapshot_problem

pytestmark = pytest.mark.slow
SEED = "libya-security-memoranda"
NEW = {
    "id": "libya-turkey-training-published",
    "title": "تركيا تبدأ تدريب قوات ليبية بموجب مذكرة التفاهم الأمنية والعسكرية",
    "lead": "بدأ فريق عسكري تركي في طرابلس تدريب عناصر من الجيش الليبي تنفيذاً لمذكرة التفاهم.",
    "lang": "ar",
    "published_at": "2020-09-01T10:00:00+02:00",
}


def cli(*args: str) -> dict:
    run = subprocess.run([sys.executable, "-m", "recommender", *args],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def start_server(index_dir: str, *extra: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "recommender", "serve", "--index-dir", index_dir,
         "--address", "127.0.0.1:0", "--metrics-port", "-1", "--processes", "1", *extra],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    (line,) = listening_lines(process)
    port = listening_port(line)
    return process, f"127.0.0.1:{port}"


def test_the_mirror_refuses_a_snapshot_that_fails_its_checksums(sample_index, tmp_path):
    url = f"file://{tmp_path / 'shared'}"
    name = remote.publish(sample_index, url)
    assert remote.remote_current(url) == name
    assert remote.publish(sample_index, url) == name  # again: nothing re-uploaded, same pointer
    good = tmp_path / "good"
    assert remote.mirror(url, good) == name and current_name(good) == name
    assert remote.mirror(url, good) is None  # up to date
    # damage the published copy: a fresh mirror must not switch to it
    damaged = tmp_path / "shared" / "snapshots" / name / "labels.npy"
    damaged.write_bytes(damaged.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(Exception, match="checksum"):
        remote.mirror(url, tmp_path / "fresh")
    assert current_name(tmp_path / "fresh") is None
    assert not list((tmp_path / "fresh" / "snapshots").iterdir())  # the partial copy is gone


@pytest.mark.parametrize("pointer", ["../../../../victim", "../../victimsrc", "..", "a/b"])
def test_a_remote_current_that_is_a_path_is_refused_and_touches_nothing(
    sample_index, tmp_path, pointer
):
    """A remote CURRENT is a name, never a path: the probe's ``../../../../victim`` made a
    mirror delete a directory outside it (issue 25)."""
    url = f"file://{tmp_path / 'shared'}"
    good = remote.publish(sample_index, url)
    mirror_dir = tmp_path / "deep" / "er" / "mirror"
    assert remote.mirror(url, mirror_dir) == good
    victim = tmp_path / "victim"
    (victim / "keep").mkdir(parents=True)
    (tmp_path / "shared" / "CURRENT").write_text(pointer + "\n")
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    with pytest.raises(SnapshotError, match="not a snapshot name"):
        remote.mirror(url, mirror_dir)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
    assert current_name(mirror_dir) == good  # the mirror keeps serving what it had


def flip_a_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damaged_copies_heal_a_replica_on_start_and_a_publish_at_the_url(sample_index, tmp_path):
    """A flipped byte in a replica's local copy is mirrored again when the replica starts
    (it stayed NOT_SERVING while the shared copy was good); one in the shared copy is
    uploaded again by the next ``publish`` (which saw manifest.json and skipped it)."""
    url = f"file://{tmp_path / 'shared'}"
    name = remote.publish(sample_index, url)
    local = tmp_path / "mirror"
    assert remote.mirror(url, local) == name
    flip_a_byte(local / "snapshots" / name / "labels.npy")
    assert snapshot_problem(local / "snapshots" / name) is not None
    assert remote.mirror(url, local) is None  # a poll of a running mirror does not re-read it
    started = remote.Mirror(url, local, interval=0.1).start()  # what a starting replica runs
    try:
        deadline = time.monotonic() + 60
        while snapshot_problem(local / "snapshots" / name) is not None:
            assert time.monotonic() < deadline, "the damaged local copy was not mirrored again"
            time.sleep(0.1)
    finally:
        started.stop()
    assert current_name(local) == name

    flip_a_byte(tmp_path / "shared" / "snapshots" / name / "labels.npy")
    with pytest.raises(Exception, match="checksum"):
        remote.mirror(url, tmp_path / "fresh")
    assert remote.publish(sample_index, url) == name  # finds the damage, uploads again
    assert remote.mirror(url, tmp_path / "fresh") == name


def test_two_replicas_pick_up_a_publish_and_answer_identically(tmp_path):
    url = f"file://{tmp_path / 'shared'}"
    work = tmp_path / "work"
    cli("index", str(SAMPLE), "--index-dir", url, "--work-dir", str(work), "--quiet")
    replicas = [start_server(url, "--mirror-dir", str(tmp_path / f"mirror{i}")) for i in (1, 2)]
    writer = None
    try:
        clients = [RecommenderClient(address) for _, address in replicas]
        for client, (process, _) in zip(clients, replicas, strict=True):
            _wait_serving(client, process)
        before = [list(c.related(article_id=SEED, k=10).results) for c in clients]
        assert before[0] == before[1] and len(before[0]) == 10
        # a replica is read-only: writes are refused, naming where they go
        with pytest.raises(grpc.RpcError) as refused:
            clients[0].upsert([NEW])
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "read-only" in refused.value.details()

        # the writer: a server on the work directory takes a live write, then publishes
        writer, writer_address = start_server(str(work))
        with RecommenderClient(writer_address, token=None) as write_client:
            _wait_serving(write_client, writer)
            assert write_client.upsert([NEW]).added == 1
        published = cli("publish", "--index-dir", str(work), "--to", url, "--quiet")
        assert published["built"] is True
        done = time.monotonic()
        delays = []
        for client in clients:
            while True:
                try:
                    client.get_article(NEW["id"])
                    break
                except grpc.RpcError as error:
                    assert error.code() == grpc.StatusCode.NOT_FOUND
                    assert time.monotonic() - done < 60, "the replica did not pick it up"
                    time.sleep(0.05)
            delays.append(time.monotonic() - done)
        print(f"publish reached the replicas after {delays[0]:.2f} s and {delays[1]:.2f} s")
        after = [list(c.related(article_id=SEED, k=10).results) for c in clients]
        assert after[0] == after[1]
        assert NEW["id"] in [r.id for r in after[0]]
        assert clients[0].stats().snapshot == clients[1].stats().snapshot == published["snapshot"]
        for client in clients:
            client.close()
    finally:
        for process, _ in replicas:
            process.terminate()
        if writer is not None:
            writer.terminate()
        for process in [p for p, _ in replicas] + ([writer] if writer else []):
            process.wait(timeout=60)


def _wait_serving(client: RecommenderClient, process: subprocess.Popen) -> None:
    """Wait for SERVING; if it does not come, fail with what the server logged."""
    try:
        client.wait_until_serving(180)
    except TimeoutError as exc:
        log = "".join(getattr(process, "log_lines", [])[-20:])
        raise AssertionError(f"{exc}; the server's last log lines:\n{log}") from None


def test_a_url_without_its_backend_is_a_clear_error(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "recommender", "index", str(SAMPLE), "--index-dir",
         "nosuchscheme://bucket/news", "--work-dir", str(tmp_path / "w"), "--quiet"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 2 and "nosuchscheme" in run.stderr
    assert not (tmp_path / "w").exists()  # refused before any work
