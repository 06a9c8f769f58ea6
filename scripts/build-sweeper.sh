#!/usr/bin/env bash
# Builds the sweeper `filegc` in release mode and, given a destination,
# installs it there. `make demo` runs it, and so does the Railway application
# image (deploy/railway/app.Dockerfile), so both build the same way.
#
#   scripts/build-sweeper.sh [DESTINATION]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --locked -p filegc-sweeper
built=${CARGO_TARGET_DIR:-$root/target}/release/filegc
if [ $# -gt 0 ]; then
    install -D -m 755 "$built" "$1"
    echo "installed $1"
else
    echo "built $built"
fi
