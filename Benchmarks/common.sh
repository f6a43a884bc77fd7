# Pieces both benchmark drivers (tensor_ops.sh, models.sh) use; sourced, not run.
# They set the caller's globals: records, notes, with_peer, load_before.

# records: the folder for the run's JSON records, $1 when given (kept), else
# a temporary folder removed at exit.
bench_records_dir() {
    if [ -n "$1" ]; then
        mkdir -p "$1"
        records=$1
    else
        records=$(mktemp -d)
        trap 'rm -rf "$records"' EXIT
    fi
}

# with_peer=yes when "$python" can import every module in $1 (comma-separated),
# else empty and a note saying so; notes=() starts here.
bench_check_peer() {
    notes=()
    with_peer=yes
    if ! "$python" -c "import $1" >/dev/null 2>&1; then
        with_peer=""
        notes+=("PyTorch peer not run: '$python' cannot import $1 (set PILOT_REFERENCE_PYTHON to a Python that has them).")
    fi
}

# load_before, and a note when the machine is busy: someone else's build or
# test on the same cores skews every row.
bench_note_load() {
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    if awk -v l="${load_before%% *}" 'BEGIN { exit !(l > 0.5) }'; then
        notes+=("the machine was busy when the run started (1-minute load ${load_before%% *}); expect noisy timings.")
    fi
}
