"""The command line: help for every command, and embed end to end in a real process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from recommender.cli import build_parser, main


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
def test_python_m_recommender_embed_prints_a_512_d_unit_vector():
    out = subprocess.run(
        [sys.executable, "-m", "recommender", "embed", "--text", "<b>مرحبا</b>"],
        capture_output=True,
        text=True,
        check=True,
    )
    record = json.loads(out.stdout.strip())
    assert record["dimension"] == 512 and len(record["vector"]) == 512
    assert abs(sum(v * v for v in record["vector"]) - 1.0) < 1e-3
