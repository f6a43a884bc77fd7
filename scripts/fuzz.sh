#!/usr/bin/env bash
# Builds the libFuzzer targets (Fuzz/*, declared in Package.swift only when
# PILOT_FUZZ is set) with AddressSanitizer into .build-fuzz, then runs each
# for a while and prints a table: executions, coverage, result.
#
#   scripts/fuzz.sh [TARGET ...] [--seconds N] [--jobs J] [--no-build]
#
# TARGET: workflow safetensors png image wire tokenizer json (default: all).
# --seconds N  how long each target runs (default 60).
# --jobs J     targets run side by side (default: 1).
# Seeds: Fuzz/corpus/TARGET (committed, small); what a run adds goes to
# .build-fuzz/corpus/TARGET and is kept between runs; a crash, hang (> 1 s
# for one input), leak or out-of-memory (> 2 GiB) leaves its input in
# .build-fuzz/findings/ and fails the run. Turn a finding into a test:
# `.build-fuzz/release/fuzz-TARGET FILE` replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

all=(workflow safetensors png image wire tokenizer json)
targets=() seconds=60 jobs=1 build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds=${2:?--seconds needs a value}; shift 2 ;;
        --jobs) jobs=${2:?--jobs needs a value}; shift 2 ;;
        --no-build) build=""; shift ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
        *) [[ " ${all[*]} " == *" $1 "* ]] || { echo "fuzz.sh: no target '$1' (targets: ${all[*]})" >&2; exit 2; }
           targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

scratch=.build-fuzz
if [ -n "$build" ]; then
    scripts/install-deps.sh >&2
    # libFuzzer without its main: SwiftPM gives each executable its own entry
    # point, which hands the input function to LLVMFuzzerRunDriver.
    clang_lib=$(dirname "$(readlink -f "$(command -v swiftc)")")/../lib/clang
    fuzzer=$(ls "$clang_lib"/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a 2>/dev/null | head -n 1)
    [ -n "$fuzzer" ] || { echo "fuzz.sh: libclang_rt.fuzzer_no_main not found under $clang_lib (a Swift toolchain for Linux has it)" >&2; exit 1; }
    for t in "${targets[@]}"; do
        echo "building fuzz-$t (AddressSanitizer + libFuzzer coverage)" >&2
        PILOT_FUZZ=1 swift build -c release --scratch-path "$scratch" --product "fuzz-$t" \
            -Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table \
            -Xswiftc -enable-testing -Xswiftc -use-ld=lld \
            -Xcc -fsanitize=fuzzer-no-link,address -Xlinker "$fuzzer" -Xlinker -lstdc++ >&2
    done
fi

mkdir -p "$scratch/findings" "$scratch/logs"
run_one() {
    local t=$1 corpus="$scratch/corpus/$1" log="$scratch/logs/$1.log"
    mkdir -p "$corpus"
    local max_len=4096
    case "$t" in workflow|wire) max_len=16384 ;; png|safetensors) max_len=65536 ;; esac
    # libFuzzer: new inputs go to the first folder; the committed seeds are read only.
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 LSAN_OPTIONS=suppressions=Fuzz/lsan.supp \
    "$scratch/release/fuzz-$t" "$corpus" "Fuzz/corpus/$t" \
        -max_total_time="$seconds" -timeout=1 -rss_limit_mb=2048 -max_len="$max_len" \
        -print_final_stats=1 -artifact_prefix="$scratch/findings/$t-" >"$log" 2>&1
}

status=0
pids=() names=()
for t in "${targets[@]}"; do
    run_one "$t" & pids+=($!) names+=("$t")
    if [ ${#pids[@]} -ge "$jobs" ]; then
        wait "${pids[0]}" || status=1
        pids=("${pids[@]:1}")
    fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done

echo
echo "| target | seconds | executions | exec/s | coverage (cov / ft) | corpus | peak RSS MB | result |"
echo "|:--|--:|--:|--:|--:|--:|--:|:--|"
for t in "${targets[@]}"; do
    log="$scratch/logs/$t.log"
    stat() { grep -E "^stat::$1:" "$log" | tail -n 1 | awk '{print $2}'; }
    runs=$(stat number_of_executed_units) rate=$(stat average_exec_per_sec) rss=$(stat peak_rss_mb)
    last=$(grep -E "^#[0-9]+" "$log" | tail -n 1 || true)
    cov=$(sed -nE 's/.* cov: ([0-9]+) ft: ([0-9]+).*/\1 \/ \2/p' <<<"$last")
    corpus=$(ls "$scratch/corpus/$t" | wc -l)
    if grep -qE "^==[0-9]+==ERROR|^SUMMARY: |ALARM: working on the last Unit for|Test unit written to" "$log"; then
        result="FAILED: $(grep -E "Test unit written to" "$log" | tail -n 1 | sed 's/.*written to //') (log: $log)"
        status=1
    else
        result=ok
    fi
    echo "| $t | $seconds | ${runs:-?} | ${rate:-?} | ${cov:-?} | $corpus | ${rss:-?} | $result |"
done
exit "$status"
