#!/usr/bin/env bash
# Model benchmarks, ours against PyTorch: builds pilot-bench in release once,
# then for each of R rounds runs every case, `pilot-bench models CASE` and
# then the PyTorch peer, one process per case and run (so each peak RSS is
# that case's), and prints one merged table of the medians across rounds.
# The weights: a random SD 1.5-size diffusers folder from
# Benchmarks/models/make_random_sd15.py (with its controlnet/ for
# controlnet_step). What each case runs: Benchmarks/README.md. The report adds
# derived rows: a ControlNet's added cost is controlnet_step minus unet.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: Benchmarks/models.sh [--rounds R] [--run-rounds R] [--threads N] [--reps N] [--only CASE,CASE...]
                            [--model DIR] [--sdxl-model DIR] [--nice N] [--keep DIR]

  --rounds R      rounds of (ours, then the peer) for each case (default 3)
  --run-rounds R  rounds for pilot_run_256, which takes minutes a run (default 1)
  --threads N     compute threads for both (default: nproc)
  --reps N        timed calls per case in each run, after one warm-up (default 3);
                  pilot_run_256 always runs once, without a warm-up
  --only CASES    comma-separated case names (see: pilot-bench models --list); the SDXL
                  cases (sdxl_*, minutes a run) run only when named here
  --model DIR     the diffusers folder (default: $PILOT_BENCH_MODEL or
                  /work/bench-models/sd15-random; make it with
                  Benchmarks/models/make_random_sd15.py DIR)
  --sdxl-model DIR  the SDXL diffusers folder for the sdxl_* cases (default:
                  $PILOT_BENCH_SDXL_MODEL or /work/bench-models/sdxl-random; make it with
                  Benchmarks/models/make_random_sdxl.py DIR)
  --nice N        run each benchmark process, ours and the peer's alike, in a session of its
                  own at niceness N, process and autogroup (e.g. -10; negative needs root), so
                  neighbours' work on shared cores yields to it (default: unchanged)
  --keep DIR      keep every run's JSON record in DIR (default: a temporary folder)

environment:
  PILOT_REFERENCE_PYTHON  the Python that runs the peer (default: python3); it needs torch,
                          diffusers and transformers. When it cannot import them, the table
                          shows ours alone, with a note.
EOF
}

rounds=3 run_rounds=1 threads=$(nproc) reps=3 only="" keep="" niceness=""
model=${PILOT_BENCH_MODEL:-/work/bench-models/sd15-random}
sdxl_model=${PILOT_BENCH_SDXL_MODEL:-/work/bench-models/sdxl-random}
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=${2:?--rounds needs a value}; shift 2 ;;
        --run-rounds) run_rounds=${2:?--run-rounds needs a value}; shift 2 ;;
        --threads) threads=${2:?--threads needs a value}; shift 2 ;;
        --reps) reps=${2:?--reps needs a value}; shift 2 ;;
        --only) only=${2:?--only needs a value}; shift 2 ;;
        --model) model=${2:?--model needs a value}; shift 2 ;;
        --sdxl-model) sdxl_model=${2:?--sdxl-model needs a value}; shift 2 ;;
        --nice) niceness=${2:?--nice needs a value}; shift 2 ;;
        --keep) keep=${2:?--keep needs a value}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "models.sh: unexpected argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
for n in "$rounds" "$run_rounds"; do
    case "$n" in '' | *[!0-9]* | 0) echo "models.sh: round counts must be positive integers" >&2; exit 2 ;; esac
done

cd "$(dirname "$0")/.."
python=${PILOT_REFERENCE_PYTHON:-python3}

echo "building pilot-bench (release)..." >&2
swift build -c release --product pilot-bench >&2
bench="$(swift build -c release --show-bin-path)/pilot-bench"

. Benchmarks/common.sh
bench_records_dir "$keep"

cases=$("$bench" models --list | cut -f1)
if [ -n "$only" ]; then
    for c in ${only//,/ }; do
        grep -qx "$c" <<<"$cases" || { echo "models.sh: unknown case '$c'; known: $(echo $cases)" >&2; exit 2; }
    done
    cases=$(grep -x -F -f <(tr ',' '\n' <<<"$only") <<<"$cases")
else
    cases=$(grep -v '^sdxl_' <<<"$cases")
fi
if grep -qv '^sdxl_' <<<"$cases" && [ ! -f "$model/model_index.json" ]; then
    echo "models.sh: no diffusers folder at $model; make one with" >&2
    echo "  $python Benchmarks/models/make_random_sd15.py $model" >&2
    exit 2
fi
if grep -q '^sdxl_' <<<"$cases" && [ ! -f "$sdxl_model/model_index.json" ]; then
    echo "models.sh: no SDXL diffusers folder at $sdxl_model; make one with" >&2
    echo "  $python Benchmarks/models/make_random_sdxl.py $sdxl_model" >&2
    exit 2
fi
if grep -qx controlnet_step <<<"$cases" && [ ! -f "$model/controlnet/config.json" ]; then
    echo "models.sh: controlnet_step needs a ControlNet at $model/controlnet; add one with" >&2
    echo "  $python Benchmarks/models/make_random_sd15.py $model" >&2
    exit 2
fi
args=(--model "$model" --threads "$threads" --reps "$reps")
run=()
if [ -n "$niceness" ]; then
    # With autogroup scheduling (Linux's default for desktops and these VMs), a
    # process's nice only ranks it within its session's group; a new session
    # whose group gets the same niceness competes with the neighbours' groups.
    run=(setsid -w sh -c 'echo "$0" >/proc/self/autogroup 2>/dev/null || true; exec nice -n "$0" "$@"' "$niceness")
fi

bench_check_peer "torch, diffusers, transformers"

bench_note_load
# Rounds outer, cases inner: a slow spell on the shared cores then hits every
# case of a round rather than all rounds of one case, which matters most for
# the report's derived rows (differences of two cases).
max_rounds=$(( rounds > run_rounds ? rounds : run_rounds ))
for r in $(seq "$max_rounds"); do
    for c in $cases; do
        n=$rounds
        if [ "$c" = pilot_run_256 ]; then n=$run_rounds; fi
        if [ "$r" -gt "$n" ]; then continue; fi
        case_args=("${args[@]}")
        case "$c" in sdxl_*) case_args+=(--model "$sdxl_model") ;; esac
        echo "$c, round $r/$n: pilot-bench (load $(cut -d' ' -f1 /proc/loadavg))" >&2
        export PILOT_BENCH_ROUND=$r   # pilot_batch_256 alternates its two halves' order by round
        "${run[@]}" "$bench" models "$c" "${case_args[@]}" --json >"$records/ours-$c-$r.json"
        if [ -n "$with_peer" ]; then
            echo "$c, round $r/$n: PyTorch peer (load $(cut -d' ' -f1 /proc/loadavg))" >&2
            if ! "${run[@]}" "$python" Benchmarks/peers/models.py "$c" "${case_args[@]}" --json >"$records/peer-$c-$r.json"; then
                rm -f "$records/peer-$c-$r.json"
                notes+=("PyTorch peer failed on $c in round $r (its error is above); that round has no PyTorch column.")
            fi
        fi
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

report=(models report --ours "$records"/ours-*.json)
peer_records=("$records"/peer-*.json)
if [ -e "${peer_records[0]}" ]; then report+=(--peer "${peer_records[@]}"); fi

echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB;" \
    "load average $load_before before, $load_after after"
echo "command: Benchmarks/models.sh --rounds $rounds --run-rounds $run_rounds --threads $threads --reps $reps" \
    "--model $model${only:+ --only $only}$(grep -q '^sdxl_' <<<"$cases" && echo " --sdxl-model $sdxl_model")${niceness:+ --nice $niceness} (PILOT_REFERENCE_PYTHON=$python)"
"$bench" "${report[@]}"
for note in "${notes[@]}"; do echo "note: $note"; done
