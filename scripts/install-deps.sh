#!/usr/bin/env bash
# Installs the Debian packages PILOT builds against, only those missing.
# Needs root (or sudo). Swift itself is expected on the PATH.
# Arguments name more packages (scripts/test.sh adds python3-zmq for the
# Python client's test and postgresql for the PostgreSQL queue's tests).
set -euo pipefail

packages=(libopenblas-dev libzmq3-dev libpng-dev libjpeg62-turbo-dev libwebp-dev libsqlite3-dev libpq-dev pkg-config zlib1g-dev "$@")

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
    echo "pilot: installing ${missing[*]}" >&2
    sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || { echo "pilot: need root or sudo to install ${missing[*]}" >&2; exit 1; }
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v swift >/dev/null || { echo "pilot: swift is not on the PATH (install Swift 6.x first)" >&2; exit 1; }
