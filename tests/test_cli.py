"""The command line: help for every command, and embed end to end in a real process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from recommender.cli.main import build_parser, main


def test_every_command_has_help_text():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert commands
    for name, sub in commands.items():
        assert sub.description, f"command {name} has no description"


def test_embed_without_text_exits_2_naming_the_field(capsys):
    assert main(["embed"]) == 2
    assert "--text" in capsys.readouterr().err


@pytest.mark.slow
def test_python_m_recommender_embed_prints_a_unit_vector_of_the_default_model():
    out = subprocess.run(
        [sys.executable, "-m", "recommender", "embed", "--text", "<b>مرحبا</b>"],
        capture_output=True,
        text=True,
        check=True,
    )
    record = json.loads(out.stdout.strip())
    assert record["dimension"] == 896 and len(record["vector"]) == 896  # USE + e5
    assert abs(sum(v * v for v in record["vector"]) - 1.0) < 1e-3


@pytest.mark.slow
def test_related_json_and_inspect_on_the_sample_index(sample_index):
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "recommender", *args], capture_output=True, text=True, check=True
        ).stdout

    payload = json.loads(
        run("related", "--index-dir", str(sample_index), "--id", "libya-security-memoranda",
            "-k", "5", "--json")
    )  # fmt: skip
    results = payload["results"]
    assert len(results) == 5 and {"id", "title", "score"} <= set(results[0])
    assert "libya-security-memoranda" not in {r["id"] for r in results}
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)

    stats = json.loads(run("inspect", "--index-dir", str(sample_index)))
    assert stats["articles"] == 91 and stats["by_lang"]["ar"] >= 10
    model = stats["snapshot"]["model"]
    assert model.startswith("use-multilingual-v3@") and "+multilingual-e5-small@" in model


def test_related_on_a_missing_index_exits_3(tmp_path, capsys):
    assert main(["related", "--index-dir", str(tmp_path / "none"), "--id", "x"]) == 3
    assert "does not exist" in capsys.readouterr().err


def test_arguments_that_are_not_utf8_are_named(tmp_path, capsys):
    # the shell passes bytes; Python keeps undecodable ones as lone surrogates
    argument = b"caf\xe9".decode("utf-8", "surrogateescape")
    assert main(["related", "--index-dir", str(tmp_path), "--text", argument]) == 2
    assert "--text: is not valid UTF-8 (byte 4)" in capsys.readouterr().err
