#!/usr/bin/env bash
# The whole check: lint, format, types, then every test (a real dev server, real processes).
#   bash scripts/test.sh [pytest args]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
# The suite runs offline: provider keys of the developer's shell must not reach the workers.
unset OPENAI_API_KEY TAVILY_API_KEY TEMPORAL_API_KEY || true
echo "== ruff check" && ruff check .
echo "== ruff format --check" && ruff format --check .
echo "== mypy" && mypy && mypy bench/run_bench.py bench/bare.py
echo "== pytest" && pytest "$@"
