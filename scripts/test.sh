#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
ruff check .
ruff format --check .
set +e
python -m pytest "$@"
rc=$?
set -e
# pytest exits 5 when it collected no tests; that is not a failure of the code.
if [ "$rc" -eq 5 ]; then rc=0; fi
exit "$rc"
