# vertex-env library for direnv: `use vertex [--profile NAME] [export options…]` in .envrc
# Install:
#   mkdir -p "${XDG_CONFIG_HOME:-$HOME/.config}/direnv/lib"
#   vertex-env hook direnv > "${XDG_CONFIG_HOME:-$HOME/.config}/direnv/lib/vertex-env.sh"
#
# Sets OPENAI_API_KEY, OPENAI_BASE_URL and VERTEX_ENV_EXPIRES_AT (the options are those of `vertex-env export`),
# and watches the profile's shared token cache file: direnv has no timer of its own, so when
# `vertex-env daemon` refreshes the token, direnv reloads at the next prompt. Without a running daemon nothing
# refreshes it: the variables go stale when the token expires (about an hour), and direnv's log says so at
# load. On failure it logs an error, returns non-zero and sets nothing, but still watches the cache file, so
# the daemon's next refresh retries. Each export has a deadline of VERTEX_ENV_HOOK_TIMEOUT seconds (default 5).

# The vertex-env that printed this library, by absolute path (it need not be on PATH).
__vertex_env_cmd=(vertex-env)

use_vertex() {
    local out paths watch= status=0 arg skip= state= pid= until
    local -a profile_args=()
    out=$(VERTEX_ENV_TIMEOUT=${VERTEX_ENV_HOOK_TIMEOUT:-5} "${__vertex_env_cmd[@]}" export --format sh "$@") || status=$?
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
    # Two lines: the token cache file (the daemon replaces it at each refresh) and the profile's daemon state file.
    if paths=$("${__vertex_env_cmd[@]}" cache path --token-file --daemon-state ${profile_args[@]+"${profile_args[@]}"} 2>/dev/null) &&
        [[ $paths == *$'\n'* ]]; then
        watch=${paths%%$'\n'*}
        state=${paths#*$'\n'}
        watch_file "$watch"
    fi
    if ((status != 0)); then
        local why="exit $status"
        ((status == 127)) && why="${__vertex_env_cmd[0]}: command not found"
        log_error "vertex-env: could not export the Vertex AI variables ($why); nothing was set"
        return "$status"
    fi
    eval "$out"
    # The profile's daemon keeps its pid in its state file.
    if [[ -n $state && -r $state && $(<"$state") =~ \"pid\":\ *([0-9]+) ]]; then
        pid=${BASH_REMATCH[1]}
    fi
    if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then
        printf -v until '%(%H:%M)T' "${VERTEX_ENV_EXPIRES_AT:-0}" 2>/dev/null || until="its expiry"
        log_status "vertex-env: no daemon keeps this token fresh; it goes stale at $until (run \`vertex-env daemon\`, or \`direnv reload\` then)"
    fi
}
