#!/usr/bin/env bash
# Builds the filegc extension for one PostgreSQL and installs it there. `make
# install` runs it, and so does the Railway database image
# (deploy/railway/postgres.Dockerfile), so both install the same way.
#
#   scripts/install-extension.sh PG_CONFIG [release|debug]
#
# The files are staged by `cargo pgrx package` and then put in place with
# `install`, which replaces each file instead of writing into it: a server
# that has the old library loaded keeps running on its copy.
set -euo pipefail

pg_config=${1:?usage: scripts/install-extension.sh PG_CONFIG [release|debug]}
profile=${2:-release}
if [[ ! -x $pg_config ]]; then
    echo "install-extension: $pg_config is not an executable pg_config; pass the pg_config of the PostgreSQL to install into" >&2
    exit 2
fi
case $profile in
    release) profile_flag=() ;;
    debug) profile_flag=(--debug) ;;
    *) echo "install-extension: the profile is release or debug, not '$profile'" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
major=$("$pg_config" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
source "$root/scripts/pgrx-tooling.sh"
ensure_cargo_pgrx
ensure_pgrx_knows "$major=$pg_config"
stage=${CARGO_TARGET_DIR:-$root/target}/filegc-package-pg$major-$profile
pkglibdir=$("$pg_config" --pkglibdir)
extension_dir=$("$pg_config" --sharedir)/extension

rm -rf "$stage"
(cd "$root/extension" && cargo pgrx package "${profile_flag[@]}" --pg-config "$pg_config" \
    --no-default-features --features "pg$major" --out-dir "$stage")

install -d "$pkglibdir" "$extension_dir"
install -m 755 "$stage$pkglibdir/filegc.so" "$pkglibdir/"
install -m 644 "$stage$extension_dir"/filegc* "$extension_dir/"
# The scripts of released versions, so that a database on one of them can
# run ALTER EXTENSION filegc UPDATE (and the upgrade tests can start there).
install -m 644 "$root"/sql/archive/filegc--*.sql "$extension_dir/"
echo "installed filegc ($profile) into PostgreSQL $major: $pkglibdir, $extension_dir"
