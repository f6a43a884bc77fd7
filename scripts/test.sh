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
# The daemon tests again, each test daemon (in-process, or `pilot serve`
# started by a test) a front of a PostgreSQL queue with one worker thread (a
# cluster the tests start in /tmp): both backends pass the same tests. Not
# repeated: the tests of SQLite itself (the store, a damaged store file, a
# SIGTERM checked in the SQLite file), of the supervised worker process (a
# crash in a kernel), and those that start a queue of their own.
if [ $# -eq 0 ]; then
    echo "== the daemon tests on the PostgreSQL queue (PILOT_TEST_QUEUE=postgresql)"
    single='JobStoreTests|testADamagedOrTruncatedJobStore|testSigtermRequeuesTheRunningJob|testAWorkerCrashInAKernel'
    own='ChaosTests|SharedQueueProcessTests|ModelAffinityTests|JobQueueContractTests'
    PILOT_TEST_QUEUE=postgresql swift test -c release --skip-build --disable-swift-testing --filter DaemonTests \
        --skip "$single|$own" 2>&1 \
        | tee -a "$log" || status=$?
fi

# One plain closing line: "tests: N passed, F failed" (", S skipped" when
# some were), summed over the runs (the last "Executed" line of each).
total=0 failed=0 skipped=0 runs=0
while read -r summary; do
    runs=$((runs + 1))
    total=$((total + $(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$summary")))
    failed=$((failed + $(sed -E 's/.* ([0-9]+) failures?.*/\1/' <<<"$summary")))
    if grep -qE "[0-9]+ tests? skipped" <<<"$summary"; then
        skipped=$((skipped + $(sed -E 's/.* ([0-9]+) tests? skipped.*/\1/' <<<"$summary")))
    fi
done < <(awk '/Test Suite .(All tests|Selected tests). (passed|failed)/ { getline; print }' "$log")
if ((runs)); then
    echo "tests: $((total - failed - skipped)) passed, $failed failed$( ((skipped)) && echo ", $skipped skipped")"
fi
exit "$status"
