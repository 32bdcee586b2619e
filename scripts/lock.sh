#!/usr/bin/env bash
# Regenerates the lock files in requirements/ from pyproject.toml, with hashes, for every
# platform a developer or an image may use. Run it after changing a dependency:
#   bash scripts/lock.sh            (make lock)
# The bootstrap (dev.txt) and each image (its pool's file) install exactly these versions;
# tests/test_lock.py fails when the locks and pyproject.toml disagree.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"

UV_VERSION=0.13.9
if [ "$("$VENV/bin/uv" --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi

compile() {
  local out=$1; shift
  "$VENV/bin/uv" pip compile --quiet --universal --python-version 3.11 --generate-hashes \
    --no-header --custom-compile-command "bash scripts/lock.sh" "$@" -o "requirements/$out"
}

# Everything a developer and CI need, the build backend included; the pools' locks take
# their versions from it, so an image runs what the tests ran.
compile dev.txt pyproject.toml requirements/build.in --extra test
compile build.txt requirements/build.in --constraint requirements/dev.txt
compile orchestrator.txt pyproject.toml --constraint requirements/dev.txt
compile search.txt pyproject.toml --extra search --constraint requirements/dev.txt
compile llm.txt pyproject.toml --extra llm --constraint requirements/dev.txt
compile api.txt pyproject.toml --extra api --constraint requirements/dev.txt
echo "locked: $(ls requirements/*.txt | tr '\n' ' ')"
