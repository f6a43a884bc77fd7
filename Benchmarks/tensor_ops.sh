#!/usr/bin/env bash
# Tensor-op benchmarks, ours against PyTorch: builds pilot-bench in release
# once, then alternates it with the PyTorch peer for R rounds (a neighbour on
# shared cores can slow one run 2-3x; alternating spreads that over both) and
# prints one merged table of the medians across rounds.
# What each row measures: Benchmarks/README.md.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: Benchmarks/tensor_ops.sh [--rounds R] [--threads N] [--reps N] [--only OP,OP...] [--keep DIR]

  --rounds R   rounds of (ours, then the peer) (default 3)
  --threads N  compute threads for both (default: nproc)
  --reps N     timed repetitions per case in each run, after one warm-up (default 5)
  --only OPS   comma-separated op names (see: pilot-bench --list)
  --keep DIR   keep every run's JSON record in DIR (default: a temporary folder)

environment:
  PILOT_REFERENCE_PYTHON  the Python that runs the peer (default: python3). When it
                          cannot import torch, the table shows ours alone, with a note.
EOF
}

rounds=3 threads=$(nproc) reps=5 only="" keep=""
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=${2:?--rounds needs a value}; shift 2 ;;
        --threads) threads=${2:?--threads needs a value}; shift 2 ;;
        --reps) reps=${2:?--reps needs a value}; shift 2 ;;
        --only) only=${2:?--only needs a value}; shift 2 ;;
        --keep) keep=${2:?--keep needs a value}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "tensor_ops.sh: unexpected argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
case "$rounds" in '' | *[!0-9]* | 0) echo "tensor_ops.sh: --rounds must be a positive integer" >&2; exit 2 ;; esac

cd "$(dirname "$0")/.."
python=${PILOT_REFERENCE_PYTHON:-python3}

echo "building pilot-bench (release)..." >&2
swift build -c release --product pilot-bench >&2
bench="$(swift build -c release --show-bin-path)/pilot-bench"

. Benchmarks/common.sh
bench_records_dir "$keep"

args=(--threads "$threads" --reps "$reps")
if [ -n "$only" ]; then args+=(--only "$only"); fi

bench_check_peer "torch"

bench_note_load
for r in $(seq "$rounds"); do
    echo "round $r/$rounds: pilot-bench" >&2
    "$bench" "${args[@]}" --json >"$records/ours-$r.json"
    if [ -n "$with_peer" ]; then
        echo "round $r/$rounds: PyTorch peer" >&2
        if ! "$python" Benchmarks/peers/tensor_ops.py "${args[@]}" --json >"$records/peer-$r.json"; then
            with_peer=""
            rm -f "$records"/peer-*.json
            notes+=("PyTorch peer failed in round $r (its error is above); the table shows ours alone.")
        fi
    fi
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

report=(report --ours "$records"/ours-*.json)
if [ -n "$with_peer" ]; then report+=(--peer "$records"/peer-*.json); fi

echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load average $load_before before, $load_after after"
echo "command: Benchmarks/tensor_ops.sh --rounds $rounds --threads $threads --reps $reps${only:+ --only $only}" \
    "(PILOT_REFERENCE_PYTHON=$python)"
"$bench" "${report[@]}"
for note in "${notes[@]}"; do echo "note: $note"; done
