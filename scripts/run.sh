#!/usr/bin/env bash
# The main job: install what is missing, build in release, start the daemon
# (`pilot serve` on ipc:// sockets in its state folder ~/.local/state/pilot,
# models in ./models, templates from ./Workflows). Arguments, if any, are
# passed to pilot instead (e.g. `scripts/run.sh run text-inpaint`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release --product pilot
bin=.build/release/pilot
[ -x "$bin" ] || { echo "pilot: build failed" >&2; exit 1; }
if (($#)); then
    exec "$bin" "$@"
fi
if [ ! -e models/tiny ]; then
    echo "pilot: no models/tiny yet: creating a tiny random-weight model and adapters there, so every template"
    echo "       runs at once (its images are noise). Put real weights in models/ (see README, Model weights)."
    "$bin" models create-tiny models/tiny
fi
exec "$bin" serve
