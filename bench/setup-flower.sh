#!/usr/bin/env bash
# Create the Flower peer venv at bench/.venv-flower, as ../shared/peers/flower/README.md says.
#
#   bash bench/setup-flower.sh
#
# Idempotent: does nothing when the venv already imports flwr 1.42.0 and ray.
# The venv is Flower's, not accord's; it is git-ignored (bench/.gitignore).
set -euo pipefail

FLWR_VERSION="1.42.0"
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$BENCH_DIR/.venv-flower"
PY="$VENV/bin/python"
PIP=("$PY" -m pip)

export FLWR_TELEMETRY_ENABLED=0

check() {
    "$PY" -c "import flwr, ray; print(flwr.__version__, ray.__version__)"
}

flwr_version() {
    "$PY" -c "import importlib.metadata as m; print(m.version('flwr'))" 2>/dev/null || true
}

if [[ -x "$PY" ]] && [[ "$(flwr_version)" == "$FLWR_VERSION" ]] && check >/dev/null 2>&1; then
    echo "setup-flower: $VENV already has flwr $FLWR_VERSION; nothing to do."
    check
    exit 0
fi

if [[ ! -x "$PY" ]]; then
    echo "setup-flower: creating $VENV"
    python3 -m venv "$VENV"
fi

# 1. torch first, so that the CPU wheel (found through pip's configured find-links) is used and
#    no CUDA build is pulled in later. flwr itself does not depend on torch.
echo "setup-flower: installing torch==2.13.0 (CPU)"
"${PIP[@]}" install torch==2.13.0

# 2. Flower with its simulation (Ray) extra, and what the workload scripts import.
echo "setup-flower: installing flwr[simulation] scikit-learn numpy psutil"
"${PIP[@]}" install "flwr[simulation]" scikit-learn numpy psutil

# 3. flwr 1.42.0 pins certifi>=2026.10.19; where the index lacks that certifi, pip silently
#    resolves to flwr 1.41.0. Force 1.42.0 as the peer README does (pip check will then report
#    the certifi mismatch; it is harmless for these workloads).
if [[ "$(flwr_version)" != "$FLWR_VERSION" ]]; then
    echo "setup-flower: pip picked flwr $(flwr_version); forcing flwr==$FLWR_VERSION with --no-deps"
    "${PIP[@]}" install --no-deps "flwr==$FLWR_VERSION" "uv>=0.13.5,<0.14"
fi

got="$(flwr_version)"
if [[ "$got" != "$FLWR_VERSION" ]]; then
    echo "setup-flower: ERROR: expected flwr $FLWR_VERSION, got '${got:-none}'" >&2
    exit 1
fi

echo "setup-flower: verifying"
check
