#!/usr/bin/env bash
# Refresh requirements.lock: resolve pyproject.toml's ranges afresh in a throwaway virtual
# environment (the extras `make venv` installs) and write the exact versions it got.
# Run `make lock`, then `make test` on the new lock before committing it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
EXTRAS=${EXTRAS:-service,dev,bench,ray}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$PYTHON" -m venv "$scratch/venv"
"$scratch/venv/bin/python" -m pip install --quiet --upgrade pip
"$scratch/venv/bin/python" -m pip install --quiet "$TORCH_SPEC"
"$scratch/venv/bin/python" -m pip install --quiet ".[$EXTRAS]"
{
	echo "# Exact versions that \`make test\` passed with; \`make venv\` installs them as pip constraints."
	echo "# Ranges for library users stay in pyproject.toml. Refresh: \`make lock\` (scripts/lock.sh),"
	echo "# then \`make clean test\`. Resolved for CPython $("$scratch/venv/bin/python" -c 'import platform; print(platform.python_version(), platform.machine())') on Linux, $(date -u +%F)."
	# the project itself is not pinned; torch without its local label (+cpu), so that
	# TORCH_SPEC can name another build of the same version
	"$scratch/venv/bin/python" -m pip freeze --all --exclude recommender | sed -E 's/^(torch==[^+]+)\+.*/\1/'
} > requirements.lock
echo "requirements.lock: $(grep -vc '^#' requirements.lock) packages"
