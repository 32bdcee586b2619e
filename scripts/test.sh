#!/usr/bin/env bash
# The whole check: lint, format, types, then every test (a real dev server, real processes).
#   bash scripts/test.sh [pytest args]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
# The suite runs offline: provider keys of the developer's shell must not reach the workers.
unset OPENAI_API_KEY TAVILY_API_KEY TEMPORAL_API_KEY || true
# System packages some tests need: Debian's chromium for the web page's browser test, and
# Pango (with a font) for WeasyPrint's PDFs. Installed when missing, where apt-get can.
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
ldconfig -p 2>/dev/null | grep -q 'libpangoft2-1.0.so.0' || need+=(libpango-1.0-0 libpangoft2-1.0-0)
[ -d /usr/share/fonts/truetype/dejavu ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "== installing ${need[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "warning: ${need[*]} missing and cannot be installed here; the API tests will fail" >&2
  fi
fi
echo "== ruff check" && ruff check .
echo "== ruff format --check" && ruff format --check .
echo "== mypy" && mypy && mypy bench/run_bench.py bench/bare.py
echo "== pytest" && pytest "$@"
