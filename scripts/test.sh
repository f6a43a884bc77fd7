#!/usr/bin/env bash
# Installs what is missing, builds once (release, with testable imports) and
# runs the whole test suite. `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh python3-zmq

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# XCTest only: the suite has no Swift Testing tests, whose empty run would
# otherwise close the output with "0 tests".
swift test -c release --disable-swift-testing "$@" 2>&1 | tee "$log" || status=$?

# One plain closing line: "tests: N passed, F failed".
summary=$(grep -E "^[[:space:]]*Executed [0-9]+ tests?, with [0-9]+ failures?" "$log" | tail -n 1 || true)
if [ -n "$summary" ]; then
    total=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$summary")
    failed=$(sed -E 's/.*with ([0-9]+) failures?.*/\1/' <<<"$summary")
    echo "tests: $((total - failed)) passed, $failed failed"
fi
exit "$status"
