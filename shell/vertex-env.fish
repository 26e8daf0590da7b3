# vertex-env prompt hook for fish.  Install: vertex-env hook fish | source  in ~/.config/fish/config.fish
#
# Before each prompt it compares the clock with VERTEX_ENV_EXPIRES_AT using fish builtins only (fish has no
# clock variable: `path mtime` of / plus its age is the current time) and re-exports only when the token is
# within VERTEX_ENV_HOOK_MARGIN seconds (default 300) of expiry, or not set yet: while the token is fresh a
# prompt starts no process at all. A failed refresh keeps the old variables, warns once, and leaves $status.

function __vertex_env_hook --on-event fish_prompt
    set -l previous_status $status
    set -l now (math (path mtime /) + (path mtime --relative /))
    set -l expires 0
    string match -qr '^[0-9]+$' -- "$VERTEX_ENV_EXPIRES_AT"; and set expires $VERTEX_ENV_EXPIRES_AT
    set -l margin 300
    string match -qr '^[0-9]+$' -- "$VERTEX_ENV_HOOK_MARGIN"; and set margin $VERTEX_ENV_HOOK_MARGIN
    if test (math $expires - $now) -gt $margin
        return $previous_status
    end
    set -l out (command vertex-env export --format fish 2>/dev/null)
    if test $status -eq 0; and test -n "$out"
        string join \n -- $out | source
        set -e __vertex_env_warned
    else if not set -q __vertex_env_warned
        set -g __vertex_env_warned 1
        printf '%s\n' "vertex-env: could not refresh the token; keeping the old variables (run 'vertex-env export' to see why)" >&2
    end
    return $previous_status
end
