#!/usr/bin/env bash
# Install torch into the given Python environment without ever pulling a multi-GB CUDA build
# onto a machine that has no NVIDIA GPU.
#   - NVIDIA GPU present (nvidia-smi works): the default PyPI build, which bundles CUDA.
#   - No GPU: a CPU wheel already on this machine (pip's find-links) if there is one, else the
#     CPU wheel from PyTorch's CPU index.
# Usage: scripts/install_torch.sh PYTHON [VERSION]
set -euo pipefail
python=$1
version=${2:-2.13.0}
if "$python" -c "import torch" 2>/dev/null; then
    echo "torch $("$python" -c 'import torch; print(torch.__version__)') already installed"
    exit 0
fi
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "NVIDIA GPU found: installing torch==$version with CUDA"
    "$python" -m pip install "torch==$version"
elif "$python" -m pip install --no-index --no-deps "torch==$version" 2>/dev/null; then
    echo "installed the local CPU wheel of torch==$version; now its dependencies"
    "$python" -m pip install "torch==$version"
else
    echo "no NVIDIA GPU: installing the CPU build of torch==$version"
    "$python" -m pip install "torch==$version" \
        --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple
fi
