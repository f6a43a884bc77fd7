#!/usr/bin/env bash
# The shared queue, measured on this machine (a throwaway PostgreSQL cluster
# in a temporary folder, stopped at the end):
#
# 1. submit→acknowledged latency, 1 and 20 clients, on SQLite and on a
#    PostgreSQL front, against a raw ZeroMQ echo in the same run
#    (`pilot-bench daemon --queue …`, cases alternating by round);
# 2. throughput against the number of `pilot worker` processes on the tiny
#    model (txt2img, 4 steps, 128×128): all jobs queued (the queue paused),
#    then resumed; from the first start to the last finish;
# 3. model switches with and without affinity: 2 workers, jobs for two
#    checkpoints (copies of the tiny model) in a fixed mixed order; a switch
#    is a checkpoint load where only one model fits in memory (SDXL on a GPU).
#
#   Benchmarks/queue.sh [--rounds R] [--jobs J]     (defaults 3 and 24)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 jobs=24
while (($#)); do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        *) echo "queue.sh: unknown argument '$1' (expected --rounds R, --jobs J)" >&2; exit 2 ;;
    esac
done
scripts/install-deps.sh postgresql >&2
echo "building pilot and pilot-bench (release)..." >&2
swift build -c release --product pilot >&2
swift build -c release --product pilot-bench >&2
bin=$PWD/.build/release

work=$(mktemp -d /tmp/pilot-queue-bench-XXXXXX)
source scripts/postgres.sh
pg_start "$work" $((20000 + RANDOM % 20000))
pids=()
cleanup() {
    ((${#pids[@]})) && kill -TERM "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    pg_stop immediate || true
    rm -rf "$work"
}
trap cleanup EXIT
database() {  # a fresh database's connection string
    "${as_owner[@]}" "$pgbin/createdb" --maintenance-db "$pg_conninfo dbname=postgres" "$1"
    echo "$pg_conninfo dbname=$1"
}
psql_value() { "${as_owner[@]}" "$pgbin/psql" "$1" -At -c "$2"; }

echo "== 1. submit latency (pilot-bench daemon), $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin/pilot-bench" daemon --rounds "$rounds" --requests 300 --queue "$(database latency)"

# A front and N workers on a fresh database; prints seconds from the first start to the last finish, and model switches.
mkdir -p "$work/models"
"$bin/pilot" models create-tiny "$work/models/tiny-a" >/dev/null
cp -r "$work/models/tiny-a" "$work/models/tiny-b"
run_jobs() {  # NAME WORKERS MODEL-PATTERN [worker options...]
    local name=$1 workers=$2 pattern=$3; shift 3
    local queue front=$work/$name
    queue=$(database "$name")
    mkdir -p "$front"; chmod 700 "$front"
    "$bin/pilot" serve --queue "$queue" --state "$front" --models "$work/models" --log-level error >/dev/null 2>>"$work/serve.log" &
    local started=() i
    started+=($!)
    for ((i = 1; i <= workers; i++)); do
        "$bin/pilot" worker --queue "$queue" --name "$name-w$i" --cache "$work/$name-w$i" --models "$work/models" \
            --log-level error "$@" 2>/dev/null &
        started+=($!)
    done
    pids+=("${started[@]}")
    until [ -S "$front/requests.sock" ] && [ -e "$front/connection.json" ]; do sleep 0.1; done
    # Every job queued before any runs (paused), so the workers' rate is measured, not the submits'.
    "$bin/pilot" queue pause --state "$front" >/dev/null
    local model
    for ((i = 0; i < jobs; i++)); do
        # mixed: each job's checkpoint drawn from a fixed pseudo-random sequence (the same every run).
        if [ "$pattern" = mixed ]; then model=tiny-$( (((i * 1103515245 + 12345) / 65536 % 2)) && echo b || echo a); else model=tiny-a; fi
        "$bin/pilot" submit txt2img --state "$front" --set "checkpoint=$work/models/$model" --set steps=4 \
            --set width=128 --set height=128 --set "seed=$i" >/dev/null
    done
    "$bin/pilot" queue resume --state "$front" >/dev/null
    until [ "$(psql_value "$queue" "SELECT count(*) FROM job WHERE state NOT IN ('queued', 'running')")" = "$jobs" ]; do sleep 0.1; done
    local t0 t1
    t0=$(psql_value "$queue" "SELECT min(started) FROM job")
    t1=$(psql_value "$queue" "SELECT max(finished) FROM job")
    [ "$(psql_value "$queue" "SELECT count(*) FROM job WHERE state = 'finished'")" = "$jobs" ] \
        || { echo "queue.sh: some jobs of $name did not finish" >&2; exit 1; }
    kill -TERM "${started[@]}"; wait "${started[@]}" 2>/dev/null || true
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
    # Model switches: per worker, in the order it started jobs, each change of model (the first load included).
    echo " $(psql_value "$queue" "SELECT count(*) FROM (SELECT models, lag(models) OVER (PARTITION BY worker ORDER BY started) AS before FROM job) s WHERE before IS DISTINCT FROM models")"
}

echo
echo "== 2. throughput against workers: $jobs txt2img jobs (tiny model, 4 steps, 128x128), medians of $rounds rounds"
echo "workers  seconds (per round)        jobs/s"
for workers in 1 2 4; do
    times=()
    for ((r = 1; r <= rounds; r++)); do
        read -r seconds _ < <(run_jobs "t${workers}r$r" "$workers" same)
        times+=("$seconds")
    done
    median=$(printf '%s\n' "${times[@]}" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    printf '%7d  %-24s %6.2f\n' "$workers" "${times[*]}" "$(awk -v j="$jobs" -v s="$median" 'BEGIN { print j / s }')"
done

echo
echo "== 3. model switches, 2 workers, $jobs jobs each for tiny-a or tiny-b in a fixed mixed order (rounds alternate the two settings)"
echo "affinity               switches (per round)   seconds (per round)"
declare -A switches seconds
for ((r = 1; r <= rounds; r++)); do
    for setting in on off; do
        option=--prefer-loaded; [ "$setting" = off ] && option=--no-prefer-loaded
        read -r s n < <(run_jobs "a${setting}r$r" 2 mixed "$option")
        switches[$setting]+="$n "; seconds[$setting]+="$s "
    done
done
for setting in on off; do
    printf '%-22s %-22s %s\n' "prefer loaded: $setting" "${switches[$setting]}" "${seconds[$setting]}"
done
