#!/usr/bin/env bash
# Generate the Python gRPC stubs from protos/ into src/recommender/v1/ (committed).
# A test regenerates them into a temporary folder and fails when they differ.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-src}"
python="${PYTHON:-.venv/bin/python}"
"$python" -m grpc_tools.protoc -I protos \
  --python_out="$out" --grpc_python_out="$out" --pyi_out="$out" \
  protos/recommender/v1/recommender.proto
touch "$out/recommender/v1/__init__.py"
