#!/usr/bin/env bash
# The main job: install what is missing, build in release, start pilot.
# Arguments are passed to pilot (default: `info`, then the command overview).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release --product pilot
bin=.build/release/pilot
[ -x "$bin" ] || { echo "pilot: build failed" >&2; exit 1; }
if (($#)); then
    exec "$bin" "$@"
fi
"$bin" info
echo
exec "$bin" --help
