#!/usr/bin/env bash
# Install the lab's packages into the current Python environment.
# torch: an installed torch (Colab, a GPU box) is kept; otherwise torch 2.13.0 is installed, the CPU build on a
# machine without an NVIDIA GPU (never the multi-GB CUDA build there).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if $PY -c "import torch" 2>/dev/null; then
  echo "setup: keeping the installed torch $($PY -c 'import torch; print(torch.__version__)')"
elif command -v nvidia-smi >/dev/null 2>&1; then
  $PY -m pip install torch==2.13.0
else
  # The CPU build: from a local wheel where the machine has one, else from PyTorch's CPU-only index.
  $PY -m pip install torch==2.13.0+cpu 2>/dev/null \
    || $PY -m pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
fi
$PY -m pip install -q -r requirements.txt -r requirements-dev.txt
