# vertex-env library for direnv: `use vertex [--profile NAME] [export options…]` in .envrc
# Install: vertex-env hook direnv > "${XDG_CONFIG_HOME:-$HOME/.config}/direnv/lib/vertex-env.sh"
#
# Sets OPENAI_API_KEY, OPENAI_BASE_URL and VERTEX_ENV_EXPIRES_AT, and watches the shared token cache file, so
# that when `vertex-env daemon` refreshes the token, direnv reloads at the next prompt (direnv has no timer of
# its own). On failure: log_error, return non-zero, and set nothing.

use_vertex() {
    local out watch
    if ! out=$(vertex-env export --format sh "$@"); then
        log_error "vertex-env: could not export the Vertex AI variables; nothing was set"
        return 1
    fi
    if ! watch=$(vertex-env cache path --token-file "$@"); then
        log_error "vertex-env: could not find the token cache file; nothing was set"
        return 1
    fi
    eval "$out"
    watch_file "$watch"
}
