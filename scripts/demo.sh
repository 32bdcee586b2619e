#!/usr/bin/env bash
# Quick start: research a question end to end on the embedded stack (Temporal dev server on a
# SQLite file, three worker processes, offline providers unless keys are set).
#   bash scripts/demo.sh ["your question"] [--max-searches N]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
exec deep-research demo "$@"
