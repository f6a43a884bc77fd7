#!/usr/bin/env bash
# Installs NVIDIA's runtime compiler (NVRTC, CUDA 13.0) outside the
# repository, for the test that compiles every CUDA kernel without a GPU.
# NVRTC comes from its PyPI wheel (nvidia-cuda-nvrtc; a wheel is a zip, so
# no virtual environment is needed) and needs neither a GPU nor a driver.
# Prints the folder holding libnvrtc.so.13 (for PILOT_CUDA_LIBRARY_PATH).
#
#   scripts/install-nvrtc.sh [FOLDER]     default: ~/.cache/pilot/nvrtc-13.0.88
set -euo pipefail

version=13.0.88
root=${1:-${PILOT_NVRTC_HOME:-$HOME/.cache/pilot/nvrtc-$version}}
lib="$root/nvidia/cu13/lib"

if [ ! -f "$lib/libnvrtc.so.13" ]; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
        echo "pilot: installing python3-pip (to fetch NVRTC from PyPI)" >&2
        sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
    fi
    download=$(mktemp -d)
    trap 'rm -rf "$download"' EXIT
    echo "pilot: fetching nvidia-cuda-nvrtc==$version from PyPI into $root" >&2
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$download" "nvidia-cuda-nvrtc==$version" >&2
    mkdir -p "$root"
    python3 -m zipfile -e "$download"/nvidia_cuda_nvrtc-*.whl "$root"
fi
[ -f "$lib/libnvrtc.so.13" ] || { echo "pilot: NVRTC not found in $lib after install" >&2; exit 1; }
echo "$lib"
