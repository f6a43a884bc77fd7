#!/usr/bin/env bash
# Installs what is missing, builds once (release, with testable imports) and
# runs the whole test suite. `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift test -c release "$@"
