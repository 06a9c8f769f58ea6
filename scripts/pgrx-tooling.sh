# Sourced by scripts/setup.sh and scripts/install-extension.sh: the one place
# that pins cargo-pgrx and tells it where each PostgreSQL is.

PGRX_VERSION=0.18.0

# Installs the pinned cargo-pgrx unless it is there already.
ensure_cargo_pgrx() {
    if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
        printf '\033[1msetup:\033[0m installing cargo-pgrx %s (a few minutes, once)\n' "$PGRX_VERSION" >&2
        cargo install cargo-pgrx --version "$PGRX_VERSION" --locked --quiet
    fi
}

# Makes cargo-pgrx know each `MAJOR=PG_CONFIG` given. `cargo pgrx init`
# replaces the whole list, so the versions it knows already are passed again.
ensure_pgrx_knows() {
    local config="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
    local -A known=()
    local line major pg_config need_init=false
    if [ -f "$config" ]; then
        while IFS= read -r line; do
            if [[ $line =~ ^pg([0-9]+)\ =\ \"(.*)\"$ ]]; then
                known[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
            fi
        done <"$config"
    fi
    for pair in "$@"; do
        major=${pair%%=*}
        pg_config=${pair#*=}
        if [ "${known[$major]:-}" != "$pg_config" ]; then
            known[$major]=$pg_config
            need_init=true
        fi
    done
    if $need_init; then
        local init_args=()
        for major in "${!known[@]}"; do
            [ -x "${known[$major]}" ] && init_args+=("--pg$major" "${known[$major]}")
        done
        printf '\033[1msetup:\033[0m pointing cargo-pgrx at %s\n' "${init_args[*]}" >&2
        cargo pgrx init "${init_args[@]}" >/dev/null
    fi
}
