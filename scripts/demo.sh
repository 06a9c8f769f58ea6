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
# STORAGE=s3 puts the images in a bucket of a local S3 server instead (moto's,
# from PyPI `moto[server]`, which `make test` installs), sizes scaled down
# 1,000 times as the server keeps them in memory.
#
# Whatever step fails, and on Ctrl-C, it stops the sweeper (and the S3
# server) it started and, unless KEEP=1, the cluster: nothing it started
# outlives it.
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
STORAGE=${STORAGE:-volume}
case "$STORAGE" in
    volume) PLACE=volume ;;
    s3) PLACE=bucket ;;
    *) echo "demo: STORAGE=$STORAGE: use volume (the default) or s3" >&2; exit 2 ;;
esac
BUCKET=demo-uploads
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
# The S3 server the demo started with STORAGE=s3.
s3_server=
stop_s3_server() {
    [ -n "$s3_server" ] || return 0
    kill -TERM "$s3_server" 2>/dev/null || true
    wait "$s3_server" 2>/dev/null || true
    s3_server=
}
# Requests to it, as a bare client: moto checks no signature, but answers
# some requests without an Authorization header with 403. The script is a
# file, as `put` reads its objects on stdin.
s3() { python3 "$DEMO_DIR/s3.py" "$@"; }
write_s3_client() {
    cat > "$DEMO_DIR/s3.py" <<'PY'
import sys, time, urllib.error, urllib.parse, urllib.request
endpoint, action, args = sys.argv[1], sys.argv[2], sys.argv[3:]
AUTH = "AWS4-HMAC-SHA256 Credential=demo/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"
def call(method, path, body=None):
    # Without a Content-Type urllib sends a form's, and moto reads the body as a form.
    request = urllib.request.Request(endpoint + path, data=body, method=method,
                                     headers={"Authorization": AUTH,
                                              "Content-Type": "application/octet-stream"})
    return urllib.request.urlopen(request, timeout=10)
if action == "wait":
    for _ in range(300):
        try:
            call("GET", "/")
            sys.exit(0)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    sys.exit("demo: the S3 server did not answer within 30 s")
elif action == "create-bucket":
    call("PUT", "/" + args[0])
elif action == "put":  # lines of KEY|BYTES on stdin
    for line in sys.stdin:
        key, size = line.rstrip("\n").split("|")
        call("PUT", "/%s/%s" % (args[0], urllib.parse.quote(key)), b"x" * int(size))
elif action == "exists":
    try:
        call("HEAD", "/%s/%s" % (args[0], urllib.parse.quote(args[1])))
    except urllib.error.HTTPError as error:
        sys.exit(1 if error.code == 404 else "demo: HEAD %s: %s" % (args[1], error))
PY
}
start_s3_server() {
    if ! python3 -c 'import moto.server' 2>/dev/null; then
        echo "demo: STORAGE=s3 needs moto's S3 server: make setup (or pip install 'moto[server]')" >&2
        exit 2
    fi
    write_s3_client
    local port
    port=$(free_port)
    python3 -m moto.server -H 127.0.0.1 -p "$port" > "$DEMO_DIR/s3.log" 2>&1 &
    s3_server=$!
    S3_ENDPOINT=http://127.0.0.1:$port
    s3 "$S3_ENDPOINT" wait
    s3 "$S3_ENDPOINT" create-bucket "$BUCKET"
}
# Whether the image at `path` is still in its place.
image_present() {
    if [ "$STORAGE" = s3 ]; then
        s3 "$S3_ENDPOINT" exists "$BUCKET" "facial_evaluations/$1"
    else
        [ -e "$VOLUME/$1" ]
    fi
}
clean_up() {
    stop_sweeper
    stop_s3_server
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
        if [ "$STORAGE" = s3 ]; then
            echo "demo: the menu opens on the volume demo (the demo's bucket lives only as long as the demo): make demo, then make demo-menu" >&2
            exit 2
        fi
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
if [ "$STORAGE" = s3 ]; then
    heading "A sample bucket on a local S3 server: ~1,250 images, ~2.3 MB, 23 orphans"
else
    heading "A sample volume like the old tool's example: ~1,250 images, ~2.3 GB, 23 orphans"
fi
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

# Lines of PATH|BYTES|MTIME (unix): what the rows reference, and 23 orphans.
sample_images() {
    local now
    now=$(date +%s)
    psql_demo -At -c "
        SELECT r.path, 600000 + (hashtext(r.path) & 2147483647) % 2600000,
               $now - (abs(hashtext(r.path)) % 150) * 86400
          FROM filegc.references r"
    for n in $(seq 1 23); do
        echo "user_$((900 + n))_$((1700000000 + n * 3600)).jpg|$((1000000 + n * 85000))|$((now - (n * 5 + 2) * 86400))"
    done
}
if [ "$STORAGE" = s3 ]; then
    start_s3_server
    # A bucket dates each object at its upload, so none of them is old here.
    sample_images | while IFS='|' read -r path bytes _; do
        echo "facial_evaluations/$path|$((bytes / 1000))"
    done | s3 "$S3_ENDPOINT" put "$BUCKET"
    say "$(sample_images | wc -l) objects in s3://$BUCKET/facial_evaluations/ at $S3_ENDPOINT"
else
    while IFS='|' read -r path bytes mtime; do
        truncate -s "$bytes" "$VOLUME/$path"
        touch -d "@$mtime" "$VOLUME/$path"
    done < <(sample_images)
    say "$(find "$VOLUME" -type f | wc -l) files, $(du -sh --apparent-size "$VOLUME" | cut -f1) apparent size, $(du -sh "$VOLUME" | cut -f1) on disk (sparse)"
fi
say "The demo's files are brand new to filegc, so it waives the one-hour wait before an orphan is eligible:"
run "$BIN/psql" -X -q "$DATABASE_URL" -c "UPDATE filegc.settings SET value = '0' WHERE name = 'orphan_min_age'"

if [ "$STORAGE" = s3 ]; then
    # The variables Railway gives a bucket, as the application service references them.
    export FILEGC_STORAGE=s3://$BUCKET/facial_evaluations/ ENDPOINT=$S3_ENDPOINT REGION=us-east-1 \
        ACCESS_KEY_ID=demo SECRET_ACCESS_KEY=demo
    say "A bucket has no size; a budget gives it the volume's alert levels:"
    run export FILEGC_STORAGE_BUDGET=4MB
else
    export FILEGC_VOLUME=$VOLUME
fi

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
    image_present "$victim" || break
    sleep 0.1
done
stop_sweeper
if image_present "$victim"; then
    echo "demo: $victim is still in the $PLACE; the sweeper said:" >&2
    cat "$DEMO_DIR/run.log" >&2
    exit 1
fi
say "$victim left the $PLACE $(( ($(date +%s%N) - started) / 1000000 )) ms after the DELETE committed."
say "It waits in .filegc-trash/ for trash_retention (24 hours), restorable with: SELECT filegc.restore('$victim');"
run "$BIN/psql" -X "$DATABASE_URL" -c "SELECT path, reason, outcome, size_bytes FROM filegc.deletions WHERE path = '$victim'"

heading "From psql: storage_stats and the audit trail"
run "$BIN/psql" -X "$DATABASE_URL" -x -c "SELECT * FROM filegc.storage_stats"
run "$BIN/psql" -X "$DATABASE_URL" -c "SELECT reason, outcome, count(*), pg_size_pretty(sum(size_bytes)) AS freed FROM filegc.deletions GROUP BY 1, 2 ORDER BY 1"

heading "Next"
echo "The interactive menu against this demo, as the old tool showed it:   make demo-menu"
