#!/usr/bin/env bash
# Installs what is missing, builds once (release, with testable imports) and
# runs the whole test suite. `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh python3-zmq postgresql
# NVRTC (from PyPI, outside the repository) for the CUDA kernels' compile test.
nvrtc=$(scripts/install-nvrtc.sh)
export PILOT_CUDA_LIBRARY_PATH="$nvrtc${PILOT_CUDA_LIBRARY_PATH:+:$PILOT_CUDA_LIBRARY_PATH}"
export PILOT_REQUIRE_NVRTC=1

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# XCTest only: the suite has no Swift Testing tests, whose empty run would
# otherwise close the output with "0 tests".
swift test -c release --disable-swift-testing "$@" 2>&1 | tee "$log" || status=$?

# One plain closing line: "tests: N passed, F failed" (", S skipped" when some were).
summary=$(grep -E "^[[:space:]]*Executed [0-9]+ tests?, with " "$log" | tail -n 1 || true)
if [ -n "$summary" ]; then
    total=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$summary")
    failed=$(sed -E 's/.* ([0-9]+) failures?.*/\1/' <<<"$summary")
    skipped=0
    if grep -qE "[0-9]+ tests? skipped" <<<"$summary"; then
        skipped=$(sed -E 's/.* ([0-9]+) tests? skipped.*/\1/' <<<"$summary")
    fi
    echo "tests: $((total - failed - skipped)) passed, $failed failed$( ((skipped)) && echo ", $skipped skipped")"
fi
exit "$status"
