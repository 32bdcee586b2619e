#!/usr/bin/env bash
# Sourced by the other scripts: makes .venv with the project and its test tools installed.
# Reinstalls only when pyproject.toml changed since the last install.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RESEARCH_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV" >&2
  if ! "$PYTHON" -m venv "$VENV"; then
    echo "error: '$PYTHON -m venv' failed; on Debian or Ubuntu install python3-venv" >&2
    exit 1
  fi
fi

stamp="$VENV/.deep-research-installed"
want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing the project and its dependencies into $VENV" >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT[test]" >&2
  echo "$want" > "$stamp"
fi

export PATH="$VENV/bin:$PATH"
