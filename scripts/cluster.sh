#!/usr/bin/env bash
# Tries the multi-machine mode on one box: a PostgreSQL cluster in a folder
# of its own, one front (`pilot serve --queue`) and N workers (`pilot worker
# --queue`), each with its own cache folder, as separate machines would have.
#
#   scripts/cluster.sh [--workers N] [--folder DIR] [--port P]
#
# Defaults: 2 workers, folder ./.cluster, PostgreSQL on a Unix socket in
# that folder only (port 5433 names the socket; nothing listens on TCP).
# Clients use the front's connection file, DIR/front/connection.json:
#   pilot submit text-inpaint --state DIR/front --wait --output out
# Ctrl-C stops the workers (running jobs are requeued), the front and
# PostgreSQL; the folder keeps the queue for the next start.
#
# On real machines, point every process at one server instead, with TLS:
#   pilot serve  --queue 'postgresql://pilot@db.example/pilot?sslmode=verify-full' --requests tcp://0.0.0.0:5555 --events tcp://0.0.0.0:5556
#   pilot worker --queue 'postgresql://pilot@db.example/pilot?sslmode=verify-full' --models /srv/models
# (CURVE is on for any non-loopback endpoint; see README, "Many machines").
set -euo pipefail
cd "$(dirname "$0")/.."
workers=2 folder=.cluster port=5433
while (($#)); do
    case "$1" in
        --workers) workers="$2"; shift 2 ;;
        --folder) folder="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        *) echo "cluster.sh: unknown argument '$1' (expected --workers N, --folder DIR, --port P)" >&2; exit 2 ;;
    esac
done
[[ "$workers" =~ ^[0-9]+$ ]] || { echo "cluster.sh: --workers expects a number, found '$workers'" >&2; exit 2; }

scripts/install-deps.sh postgresql
swift build -c release --product pilot
bin=$PWD/.build/release/pilot
mkdir -p "$folder"
folder=$(cd "$folder" && pwd)
source scripts/postgres.sh
pg_start "$folder" "$port"
queue="$pg_conninfo dbname=postgres"

pids=()
cleanup() {
    trap - INT TERM EXIT
    ((${#pids[@]})) && kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    pg_stop fast || true
    echo "cluster.sh: stopped (the queue stays in $pg_data)"
}
trap cleanup INT TERM EXIT

if [ ! -e models/tiny ]; then
    "$bin" models create-tiny models/tiny
fi
mkdir -p "$folder/front"
chmod 700 "$folder/front"
if [ "$(id -u)" = 0 ]; then chown root:root "$folder/front"; fi
"$bin" serve --queue "$queue" --state "$folder/front" --models models &
pids+=($!)
for i in $(seq 1 "$workers"); do
    "$bin" worker --queue "$queue" --name "worker-$i" --cache "$folder/worker-$i" --models models &
    pids+=($!)
done
echo "cluster.sh: PostgreSQL in $pg_data, front state $folder/front, $workers worker(s); Ctrl-C stops them all"
wait -n "${pids[@]}" || true
