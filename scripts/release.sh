#!/usr/bin/env bash
# Builds the release of the sweeper `filegc`: a tarball per target and their
# SHA256SUMS, for applications that add the binary to their image without
# building Rust (docs/railway.md).
#
# The x86_64 Linux binary links against glibc 2.28 at most (Debian 10,
# Ubuntu 18.10, RHEL 8 and newer), whatever glibc the build machine has:
# cargo-zigbuild links it with zig against that version's symbols. zig comes
# from the `ziglang` wheel and cargo-zigbuild from crates.io, both installed
# here when missing. aarch64 and static musl binaries are built too when the
# Rust toolchain has those targets (`rustup target add ...`), and skipped with
# a note otherwise.
#
# Usage: scripts/release.sh [OUTPUT_DIR]    (default: $CARGO_TARGET_DIR/dist, else target/dist)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

ZIGLANG_VERSION=0.17.1
CARGO_ZIGBUILD_VERSION=0.24.1
# The oldest glibc the gnu binaries run on; checked after the build.
GLIBC=2.28
ZIG_DIR=${FILEGC_ZIG_DIR:-/opt/filegc/ziglang}
target_dir=${CARGO_TARGET_DIR:-$root/target}
out=${1:-$target_dir/dist}

say() { printf '\033[1mrelease:\033[0m %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -x "$ZIG_DIR/ziglang/zig" ]; then
    say "installing zig $ZIGLANG_VERSION from the ziglang wheel into $ZIG_DIR"
    as_root mkdir -p "$ZIG_DIR"
    as_root python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps \
        --target "$ZIG_DIR" "ziglang==$ZIGLANG_VERSION"
    as_root chmod -R a+rX "$ZIG_DIR"
fi
export PATH="$ZIG_DIR/ziglang:$HOME/.cargo/bin:$PATH"
if [ "$(cargo-zigbuild --version 2>/dev/null)" != "cargo-zigbuild $CARGO_ZIGBUILD_VERSION" ]; then
    say "installing cargo-zigbuild $CARGO_ZIGBUILD_VERSION"
    cargo install --quiet --locked --force cargo-zigbuild --version "$CARGO_ZIGBUILD_VERSION"
fi

installed_targets=$(rustup target list --installed 2>/dev/null || rustc -vV | sed -n 's/^host: //p')
version=$(sed -n 's/^version = "\(.*\)"/\1/p' sweeper/Cargo.toml | head -n 1)
if [ -z "$version" ]; then
    version=$(cargo pkgid -p filegc-sweeper | sed 's/.*[#@]//')
fi
mkdir -p "$out"
rm -f "$out"/filegc-*.tar.gz "$out/SHA256SUMS"

# The highest GLIBC_x.y symbol version a binary needs; empty for a static one.
glibc_needed() { objdump -T "$1" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1; }

built=()
for target in x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    if ! grep -qx "$target" <<<"$installed_targets"; then
        say "skipped $target: this Rust toolchain does not have it (rustup target add $target)"
        continue
    fi
    build_target=$target
    case "$target" in *-gnu) build_target="$target.$GLIBC" ;; esac
    say "building filegc $version for $target"
    cargo zigbuild --release --locked -p filegc-sweeper --target "$build_target"
    binary="$target_dir/$target/release/filegc"
    if [ "$target" = x86_64-unknown-linux-gnu ]; then
        needed=$(glibc_needed "$binary")
        if [ -n "$needed" ] && [ "$(printf '%s\n%s\n' "$needed" "$GLIBC" | sort -V | tail -n 1)" != "$GLIBC" ]; then
            say "the $target binary needs glibc $needed, more than $GLIBC"
            exit 1
        fi
        "$binary" --version >/dev/null
    fi
    name="filegc-$version-${target/-unknown-/-}"
    staging=$(mktemp -d)
    mkdir "$staging/$name"
    install -m 755 "$binary" "$staging/$name/filegc"
    cp README.md "$staging/$name/"
    tar -C "$staging" -czf "$out/$name.tar.gz" --owner=0 --group=0 "$name"
    rm -rf "$staging"
    built+=("$name.tar.gz")
done
(cd "$out" && sha256sum "${built[@]}" > SHA256SUMS)
say "built in $out: ${built[*]} and SHA256SUMS"
