# vertex-env library for direnv: `use vertex [--profile NAME] [export options…]` in .envrc
# Install: vertex-env hook direnv > "${XDG_CONFIG_HOME:-$HOME/.config}/direnv/lib/vertex-env.sh"
#
# Sets OPENAI_API_KEY, OPENAI_BASE_URL and VERTEX_ENV_EXPIRES_AT (the options are those of `vertex-env export`),
# and watches the profile's shared token cache file: direnv has no timer of its own, so when
# `vertex-env daemon` refreshes the token, direnv reloads at the next prompt. On failure it logs an error,
# returns non-zero and sets nothing, but still watches the cache file, so the daemon's next refresh retries.

use_vertex() {
    local out watch status=0 arg skip=
    local -a profile_args=()
    out=$(vertex-env export --format sh "$@") || status=$?
    # `cache path` takes the profile options only: drop export's own (--format X, --google, --legacy, --unset).
    for arg in "$@"; do
        if [[ -n $skip ]]; then
            skip=
            continue
        fi
        case $arg in
        --format) skip=1 ;;
        --format=* | --google | --legacy | --unset) ;;
        *) profile_args+=("$arg") ;;
        esac
    done
    if watch=$(vertex-env cache path --token-file ${profile_args[@]+"${profile_args[@]}"} 2>/dev/null) &&
        [[ -n $watch ]]; then
        watch_file "$watch"
    fi
    if ((status != 0)); then
        log_error "vertex-env: could not export the Vertex AI variables (exit $status); nothing was set"
        return "$status"
    fi
    eval "$out"
}
