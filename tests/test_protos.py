"""The committed gRPC stubs are exactly what the generation script produces from the proto."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_regenerating_the_stubs_changes_nothing(tmp_path):
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_protos.sh"), str(tmp_path)],
        check=True,
        cwd=ROOT,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    generated = tmp_path / "recommender" / "v1"
    committed = ROOT / "src" / "recommender" / "v1"
    names = sorted(p.name for p in generated.iterdir() if p.is_file())
    assert names == ["__init__.py", "recommender_pb2.py", "recommender_pb2.pyi",
                     "recommender_pb2_grpc.py"]  # fmt: skip
    for name in names:
        assert filecmp.cmp(generated / name, committed / name, shallow=False), (
            f"{name} differs from what scripts/gen_protos.sh generates: rerun it and commit"
        )
