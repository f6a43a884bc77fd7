# A PostgreSQL cluster in a folder of its own, for scripts/cluster.sh and
# Benchmarks/queue.sh (sourced, not run).
#
# pg_start FOLDER PORT: initdb FOLDER/pgdata if it is not there yet (as the
# `postgres` user when run as root: initdb refuses root), then start it
# listening on a Unix socket in FOLDER only (PORT names the socket). Sets
# pgbin, as_owner (the command prefix that runs a tool as the cluster's
# owner), pg_data and pg_conninfo (host, port and user; add dbname=…).
pg_start() {
    local folder=$1 port=$2
    pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ ! -x "$pgbin/initdb" ]; then
        echo "PostgreSQL's server binaries are missing (apt install postgresql)" >&2
        return 1
    fi
    as_owner=()
    if [ "$(id -u)" = 0 ]; then
        as_owner=(runuser -u postgres --)
        chown postgres:postgres "$folder"
    fi
    pg_data=$folder/pgdata
    if [ ! -e "$pg_data/PG_VERSION" ]; then
        "${as_owner[@]}" "$pgbin/initdb" -D "$pg_data" -A trust -U postgres >/dev/null
    fi
    "${as_owner[@]}" "$pgbin/pg_ctl" -D "$pg_data" -l "$folder/postgresql.log" -w \
        -o "-k $folder -p $port -c listen_addresses=''" start >/dev/null
    pg_conninfo="host=$folder port=$port user=postgres"
}

# pg_stop MODE: fast (clean) or immediate (as a crash would).
pg_stop() {
    "${as_owner[@]}" "$pgbin/pg_ctl" -D "$pg_data" -m "$1" -w stop >/dev/null 2>&1
}
