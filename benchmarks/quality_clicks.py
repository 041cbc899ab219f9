"""The click ranker judged on simulated readers (``evaluation.simulator``) and on the
hand-written MIND sample, through ``recommender eval clicks`` (MIND's format end to end):
AUC, MRR, nDCG@5, nDCG@10 of random, popularity, content and the fitted ranker, with clicks
that follow the readers' tastes and with random clicks. Writes
benchmarks/results/quality-clicks.json (docs/quality.md, "Clicks").

    .venv/bin/python benchmarks/quality_clicks.py [--seeds 0 1 2]    (or: make quality-clicks)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import machine_info  # noqa: E402

from recommender.cli.events import eval_clicks  # noqa: E402
from recommender.cli.main import build_parser  # noqa: E402
from recommender.evaluation.simulator import Simulation, simulate  # noqa: E402

SAMPLE = ROOT / "data" / "articles.jsonl"
MIND_SAMPLE = ROOT / "tests" / "data" / "mind-sample"


def run(behaviors: Path, news: Path, model: str | None, index_dir: Path) -> dict[str, Any]:
    argv = ["eval", "clicks", str(behaviors), str(news), "--index-dir", str(index_dir)]
    args = build_parser().parse_args(argv + (["--model", model] if model else []))
    started = time.perf_counter()
    result = eval_clicks(args)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model", help="embedding model (default: the engine's)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/quality-clicks.json"))
    args = parser.parse_args()
    articles = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        index_dir = work / "index"  # indexed once, reused by every run
        for seed in args.seeds:
            for random_clicks in (False, True):
                news, behaviors = simulate(articles, Simulation(random_clicks=random_clicks,
                                                                seed=seed))  # fmt: skip
                (work / "news.tsv").write_text(news, encoding="utf-8")
                (work / "behaviors.tsv").write_text(behaviors, encoding="utf-8")
                result = run(work / "behaviors.tsv", work / "news.tsv", args.model, index_dir)
                result.update(data="simulator", seed=seed, random_clicks=random_clicks)
                print(json.dumps(result), flush=True)
                runs.append(result)
        result = run(MIND_SAMPLE / "behaviors.tsv", MIND_SAMPLE / "news.tsv", args.model,
                     work / "mind-sample")  # fmt: skip
        result.update(data="tests/data/mind-sample", seed=None, random_clicks=False)
        print(json.dumps(result), flush=True)
        runs.append(result)
    Path(args.out).write_text(json.dumps({"machine": machine_info(), "runs": runs}, indent=2)
                              + "\n", encoding="utf-8")  # fmt: skip
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
