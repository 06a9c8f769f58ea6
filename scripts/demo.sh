#!/usr/bin/env bash
# The whole system on a sample volume, in one command: a throwaway PostgreSQL
# with the extension, the old tool's two tables, ~1,250 images (~2.3 GB as
# sparse files, 23 of them orphaned, some older than 90 days), then the
# sweeper at work.
#
# Usage: scripts/demo.sh          run the demo (KEEP=1 leaves the cluster running)
#        scripts/demo.sh menu     open the interactive menu against the demo
#        scripts/demo.sh stop     stop a cluster left running with KEEP=1
#
# Whatever step fails, and on Ctrl-C, it stops the sweeper it started and,
# unless KEEP=1, the cluster: nothing it started outlives it.
set -euo pipefail
cd "$(dirname "$0")/.."

PG=${PG:-15}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
BIN=$("$PG_CONFIG" --bindir)
FILEGC=${FILEGC:-$PWD/target/release/filegc}
# The server runs as the postgres user when this runs as root, and that user
# cannot enter root's home where a checkout usually lives: the demo's data
# then goes under /var/tmp.
if [ "$(id -u)" -eq 0 ]; then
    DEMO_DIR=${DEMO_DIR:-/var/tmp/filegc-demo}
    as_server() { runuser -u postgres -- "$@"; }
else
    DEMO_DIR=${DEMO_DIR:-$PWD/target/demo}
    as_server() { "$@"; }
fi
PGDATA_DIR=$DEMO_DIR/pgdata
VOLUME=$DEMO_DIR/facial_evaluations
PORT_FILE=$DEMO_DIR/port

heading() { printf '\n\033[1;34m== %s\033[0m\n' "$*"; }
say() { printf '\033[2m%s\033[0m\n' "$*"; }
run() { printf '\033[1m$ %s\033[0m\n' "$*"; "$@"; }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start_cluster() {
    local port
    port=$(cat "$PORT_FILE" 2>/dev/null || free_port)
    echo "$port" > "$PORT_FILE"
    if ! as_server "$BIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; then
        as_server "$BIN/pg_ctl" -D "$PGDATA_DIR" -l "$DEMO_DIR/server.log" -w \
            -o "-p $port -c listen_addresses=127.0.0.1 -k $DEMO_DIR" start >/dev/null
    fi
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/demo"
}

stop_cluster() {
    if [ -f "$PGDATA_DIR/postmaster.pid" ]; then
        as_server "$BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null
    fi
}

psql_demo() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" "$@"; }

# The `filegc run` the demo started, if it still runs.
sweeper=
stop_sweeper() {
    [ -n "$sweeper" ] || return 0
    kill -TERM "$sweeper" 2>/dev/null || true
    # It settles its batch and exits within seconds; one that does not is killed.
    for _ in $(seq 1 100); do
        kill -0 "$sweeper" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$sweeper" 2>/dev/null || true
    wait "$sweeper" 2>/dev/null || true
    sweeper=
}
clean_up() {
    stop_sweeper
    if [ "${KEEP:-0}" != 1 ]; then stop_cluster; fi
}
# The exit trap runs on every way out; a signal becomes an exit so that it runs then too.
trap clean_up EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

case "${1:-demo}" in
    stop)
        stop_cluster
        exit 0
        ;;
    menu)
        [ -d "$PGDATA_DIR" ] || { echo "demo: no demo yet: run make demo first" >&2; exit 2; }
        start_cluster
        FILEGC_VOLUME=$VOLUME "$FILEGC"
        exit 0
        ;;
    demo) ;;
    *)
        echo "usage: scripts/demo.sh [demo|menu|stop]" >&2
        exit 2
        ;;
esac

heading "A throwaway PostgreSQL $PG with the filegc extension"
stop_cluster 2>/dev/null || true
rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR" "$VOLUME"
[ "$(id -u)" -ne 0 ] || chown postgres "$DEMO_DIR"
as_server "$BIN/initdb" -D "$PGDATA_DIR" -U postgres -A trust --no-sync -E UTF8 --locale=C >/dev/null
start_cluster
"$BIN/psql" -X -q "postgres://postgres@127.0.0.1:$(cat "$PORT_FILE")/postgres" -c "CREATE DATABASE demo"
say "data: $PGDATA_DIR, port $(cat "$PORT_FILE"), volume: $VOLUME"

heading "The application's two tables"
psql_demo <<'SQL'
CREATE EXTENSION filegc;
CREATE TABLE facial_evaluations (id bigserial PRIMARY KEY, user_id bigint NOT NULL,
    image_path text, secondary_image_path text, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE generations (id bigserial PRIMARY KEY, user_id bigint NOT NULL,
    input_image_path text, output_image_path text, created_at timestamptz NOT NULL DEFAULT now());
SQL
heading "A sample volume like the old tool's example: ~1,250 images, ~2.3 GB, 23 orphans"
# Rows first; the files are made from what the rows reference, plus 23 that
# nothing references. Values come in the three forms an application stores.
psql_demo <<'SQL'
INSERT INTO facial_evaluations (user_id, image_path, secondary_image_path, created_at)
SELECT n,
       CASE n % 3 WHEN 0 THEN format('user_%s_%s.jpg', n, 1690000000 + n * 25000)
                  WHEN 1 THEN format('/app/facial_evaluations/user_%s_%s.jpg', n, 1690000000 + n * 25000)
                  ELSE format('https://myapp.up.railway.app/app/facial_evaluations/user_%s_%s.jpg', n, 1690000000 + n * 25000) END,
       CASE WHEN n % 4 = 0 THEN format('user_%s_%s_2.jpg', n, 1690000000 + n * 25000) END,
       to_timestamp(1690000000 + n * 25000)
  FROM generate_series(1, 800) AS n;
INSERT INTO generations (user_id, input_image_path, output_image_path, created_at)
SELECT n, format('user_%s_%s.jpg', n, 1690000000 + n * 25000),
       format('user_%s_%s.%s', n, 1690000000 + n * 25000 + 60, CASE WHEN n % 2 = 0 THEN 'png' ELSE 'webp' END),
       to_timestamp(1690000000 + n * 25000 + 60)
  FROM generate_series(1, 230) AS n;
SQL
heading "filegc tracks their image columns"
for column in facial_evaluations.image_path facial_evaluations.secondary_image_path \
              generations.input_image_path generations.output_image_path; do
    run "$BIN/psql" -X -q -At "$DATABASE_URL" \
        -c "SELECT 'tracking $column: ' || filegc.track('${column%%.*}', '${column#*.}', '{/app/facial_evaluations/}') || ' references'"
done

make_file() { # path, bytes, mtime (unix)
    truncate -s "$2" "$VOLUME/$1"
    touch -d "@$3" "$VOLUME/$1"
}
now=$(date +%s)
while IFS='|' read -r path bytes mtime; do
    make_file "$path" "$bytes" "$mtime"
done < <(psql_demo -At -c "
    SELECT r.path, 600000 + (hashtext(r.path) & 2147483647) % 2600000,
           $now - (abs(hashtext(r.path)) % 150) * 86400
      FROM filegc.references r")
for n in $(seq 1 23); do
    make_file "user_$((900 + n))_$((1700000000 + n * 3600)).jpg" $((1000000 + n * 85000)) $((now - (n * 5 + 2) * 86400))
done
say "$(find "$VOLUME" -type f | wc -l) files, $(du -sh --apparent-size "$VOLUME" | cut -f1) apparent size, $(du -sh "$VOLUME" | cut -f1) on disk (sparse)"
say "The demo's files are brand new to filegc, so it waives the one-hour wait before an orphan is eligible:"
run "$BIN/psql" -X -q "$DATABASE_URL" -c "UPDATE filegc.settings SET value = '0' WHERE name = 'orphan_min_age'"

export FILEGC_VOLUME=$VOLUME

heading "Weekly routine: storage statistics (filegc stats)"
run "$FILEGC" stats

heading "Orphaned images: files no row references (filegc orphans)"
run "$FILEGC" orphans --no-scan

heading "Monthly routine: delete the orphans (filegc delete-orphans --yes)"
run "$FILEGC" delete-orphans --yes --no-scan

heading "A row is deleted in psql; the sweeper, running, removes its image"
say "unreferenced_delay is 10 minutes by default; the demo sets it to 0."
run "$BIN/psql" -X -q "$DATABASE_URL" -c "UPDATE filegc.settings SET value = '0' WHERE name = 'unreferenced_delay'"
# Started directly, not through `run`: `run ... &` would put a subshell
# between, whose PID is no use for stopping the sweeper.
printf '\033[1m$ %s\033[0m\n' "$FILEGC run --sweep-interval 1h --scan-interval 1h &"
"$FILEGC" run --sweep-interval 1h --scan-interval 1h > "$DEMO_DIR/run.log" 2>&1 &
sweeper=$!
victim=$(psql_demo -At -c "SELECT filegc.ref_path(image_path, '{/app/facial_evaluations/}') FROM facial_evaluations WHERE user_id = 700")
started=$(date +%s%N)
run "$BIN/psql" -X "$DATABASE_URL" -c "DELETE FROM facial_evaluations WHERE user_id = 700"
for _ in $(seq 1 300); do
    [ -e "$VOLUME/$victim" ] || break
    sleep 0.1
done
stop_sweeper
if [ -e "$VOLUME/$victim" ]; then
    echo "demo: $victim is still on the volume; the sweeper said:" >&2
    cat "$DEMO_DIR/run.log" >&2
    exit 1
fi
say "$victim left the volume $(( ($(date +%s%N) - started) / 1000000 )) ms after the DELETE committed."
say "It waits in .filegc-trash/ for trash_retention (24 hours), restorable with: SELECT filegc.restore('$victim');"
run "$BIN/psql" -X "$DATABASE_URL" -c "SELECT path, reason, outcome, size_bytes FROM filegc.deletions WHERE path = '$victim'"

heading "From psql: storage_stats and the audit trail"
run "$BIN/psql" -X "$DATABASE_URL" -x -c "SELECT * FROM filegc.storage_stats"
run "$BIN/psql" -X "$DATABASE_URL" -c "SELECT reason, outcome, count(*), pg_size_pretty(sum(size_bytes)) AS freed FROM filegc.deletions GROUP BY 1, 2 ORDER BY 1"

heading "Next"
echo "The interactive menu against this demo, as the old tool showed it:   make demo-menu"
