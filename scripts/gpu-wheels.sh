#!/usr/bin/env bash
# Downloads into DIR the wheels that Benchmarks/peers/gpu.py needs on a GPU
# machine that already has torch, transformers 5.x, safetensors, numpy,
# huggingface-hub (and its httpx), filelock, regex, requests, pillow and zipp,
# but not diffusers, and cannot reach a package index:
#
#   diffusers 0.39.0        the version Tests/Reference/requirements-sd.txt pins;
#                           checked with transformers 5.17.0 and huggingface-hub
#                           1.33.0 (needs hub >= 0.34, < 2; httpx < 1)
#   importlib_metadata 9.1.0  a declared requirement of diffusers (unused at run time
#                           on Python >= 3.8); 9.1.0 needs only zipp >= 3.20, where
#                           10.x adds lazy-importer
#
# Both are pure Python (py3-none-any), about 5.7 MB together. Pinned by
# version and sha256; fetched for CPython 3.12 on x86_64 Linux, with no
# dependencies. On the GPU machine:
#
#   python3 -m pip install --no-index --no-deps DIR/*.whl
#
# (or, where pip may not write, unpack them: for w in DIR/*.whl; do
# python3 -m zipfile -e "$w" SITE; done, and run with PYTHONPATH=SITE).
#
# Usage: scripts/gpu-wheels.sh DIR      (PYTHON=... picks the Python whose pip runs)
set -euo pipefail

dir=${1:?usage: scripts/gpu-wheels.sh DIR}
python=${PYTHON:-python3}

mkdir -p "$dir"
req=$(mktemp)
trap 'rm -f "$req"' EXIT
cat >"$req" <<'EOF'
diffusers==0.39.0 --hash=sha256:912aca51b5787365110806e984d5555735bf8a461073bb8459029d0bca7870ef
importlib_metadata==9.1.0 --hash=sha256:626c65eddcd23c0ee0ffb17567aa882f8cfce0e552c424f2fa37c8b679374078
EOF

"$python" -m pip download --no-deps --only-binary=:all: --require-hashes \
    --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d "$dir" -r "$req"

echo "wheels in $dir:"
ls -l "$dir"/diffusers-0.39.0-*.whl "$dir"/importlib_metadata-9.1.0-*.whl
echo "install: python3 -m pip install --no-index --no-deps $dir/*.whl"
