#!/usr/bin/env bash
# Runs the test suite under a sanitizer, in its own build folder so the
# plain build is untouched:
#
#   scripts/sanitize.sh address|thread [swift test options, e.g. --filter DaemonTests]
#
# AddressSanitizer (with LeakSanitizer) or ThreadSanitizer; release mode, as
# the plain suite runs, so the numerical tests stay quick. Prints the
# suite's summary and every sanitizer report; exits non-zero on either.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: scripts/sanitize.sh address|thread [swift test options]}
shift
case "$kind" in address|thread) ;; *) echo "sanitize.sh: address or thread, not '$kind'" >&2; exit 2 ;; esac
scripts/install-deps.sh python3-zmq >&2
nvrtc=$(scripts/install-nvrtc.sh)
export PILOT_CUDA_LIBRARY_PATH="$nvrtc${PILOT_CUDA_LIBRARY_PATH:+:$PILOT_CUDA_LIBRARY_PATH}"
export PILOT_REQUIRE_NVRTC=1
# Reports go to the log with the test that caused them; halt_on_error=0 lets
# one run collect them all.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=0:abort_on_error=0}
# Exit-time leak reports that are not leaks (XCTest's never-freed tests,
# references LeakSanitizer cannot read): each entry says why. An absolute
# path, for the `pilot` processes the tests start in other folders.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/scripts/lsan.supp}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0:second_deadlock_stack=1}
log=".build-$kind/sanitize.log"
mkdir -p ".build-$kind"
status=0
swift test -c release --sanitize="$kind" --scratch-path ".build-$kind" --disable-swift-testing "$@" 2>&1 | tee "$log" || status=$?
# One SUMMARY line per report. The worker crash the fault tests inject on
# purpose (FaultInjection.crash, a write through a bad pointer) is not one.
reports=$(grep -E "^SUMMARY: (Address|Thread|Leak)Sanitizer" "$log" | grep -vc "FaultInjection" || true)
injected=$(grep -E "^SUMMARY: (Address|Thread)Sanitizer: SEGV" "$log" | grep -c "FaultInjection" || true)
echo "sanitizer ($kind): $reports report(s), besides $injected crash(es) the fault tests inject; log: $log"
[ "$reports" -eq 0 ] || status=1
exit "$status"
