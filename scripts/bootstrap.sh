#!/usr/bin/env bash
# Sourced by the other scripts: makes .venv with the project and its test tools installed,
# exactly the versions locked in requirements/dev.txt (hashes checked).
# Reinstalls only when pyproject.toml or the lock changed since the last install. What pip
# says goes to .venv/install.log and is shown only if the install fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RESEARCH_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV" >&2
  if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
    echo "error: '$PYTHON -m venv' failed; on Debian or Ubuntu install python3-venv" >&2
    exit 1
  fi
fi

stamp="$VENV/.deep-research-installed"
want="$(cat "$ROOT/pyproject.toml" "$ROOT/requirements/dev.txt" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing the project and its locked dependencies into $VENV" >&2
  log="$VENV/install.log"
  pip=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input)
  # The lock holds every dependency and the build backend, so the project itself is built
  # without isolation: nothing unpinned is downloaded to build it.
  if ! { "${pip[@]}" install --require-hashes --no-deps -r "$ROOT/requirements/dev.txt" \
         && "${pip[@]}" install --no-deps --no-build-isolation -e "$ROOT"; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "error: installing into $VENV failed; the whole output is in $log" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi

export PATH="$VENV/bin:$PATH"
