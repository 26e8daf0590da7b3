# vertex-env prompt hook for fish.  Install once: vertex-env hook fish --install >> ~/.config/fish/config.fish
# (no process at shell start-up), or put  vertex-env hook fish | source  in ~/.config/fish/config.fish.
#
# Before each prompt it compares the clock with VERTEX_ENV_EXPIRES_AT and re-exports only when the token is
# within VERTEX_ENV_HOOK_MARGIN seconds (default 300) of expiry, or not set yet: while the token is fresh a
# prompt starts no process at all. A failed refresh keeps the old variables, warns once, leaves $status as it
# was, and is not retried for VERTEX_ENV_HOOK_RETRY seconds (default 30); each try has a deadline of
# VERTEX_ENV_HOOK_TIMEOUT seconds (default 5). The profile and options come from VERTEX_ENV_* variables.
#
# fish has no clock variable (fish-shell#10093). From fish 3.5 the `path` builtin gives one: the mtime of /
# plus its age is the current time. Older fish runs `date +%s`, one process, only at prompts.

# @installed@
# The vertex-env that printed this hook, by absolute path (it need not be on PATH).
set -g __vertex_env_cmd vertex-env

if builtin -q path 2>/dev/null
    function __vertex_env_now
        math (path mtime /) + (path mtime --relative /)
    end
else
    function __vertex_env_now
        command date +%s
    end
end

function __vertex_env_hook --on-event fish_prompt
    set -l previous_status $status
    # Inside `vertex-env run --proxy` the variables point at the proxy, which keeps tokens fresh itself.
    test "$VERTEX_ENV_ACTIVE" = proxy; and return $previous_status
    set -l now (__vertex_env_now)
    set -l expires 0
    string match -qr '^[0-9]+$' -- "$VERTEX_ENV_EXPIRES_AT"; and set expires $VERTEX_ENV_EXPIRES_AT
    set -l margin 300
    string match -qr '^[0-9]+$' -- "$VERTEX_ENV_HOOK_MARGIN"; and set margin $VERTEX_ENV_HOOK_MARGIN
    set -l retry 30
    string match -qr '^[0-9]+$' -- "$VERTEX_ENV_HOOK_RETRY"; and set retry $VERTEX_ENV_HOOK_RETRY
    set -q __vertex_env_not_before; or set -g __vertex_env_not_before 0
    if test (math $expires - $now) -gt $margin; or test $now -lt $__vertex_env_not_before
        return $previous_status
    end
    set -l timeout 5
    string match -qr '^[0-9]+$' -- "$VERTEX_ENV_HOOK_TIMEOUT"; and set timeout $VERTEX_ENV_HOOK_TIMEOUT
    set -l out (VERTEX_ENV_TIMEOUT=$timeout command $__vertex_env_cmd export --format fish 2>/dev/null)
    set -l code $status
    if test $code -eq 0; and test -n "$out"
        string join \n -- $out | source
        set -e __vertex_env_warned
        set -g __vertex_env_not_before 0
        # A token served within the margin (tokens shorter-lived than the margin): look again halfway to expiry.
        if string match -qr '^[0-9]+$' -- "$VERTEX_ENV_EXPIRES_AT"; and test (math $VERTEX_ENV_EXPIRES_AT - $now) -le $margin
            set -g __vertex_env_not_before (math --scale=0 "$now + ($VERTEX_ENV_EXPIRES_AT - $now) / 2")
        end
    else
        set -g __vertex_env_not_before (math $now + $retry)
        if not set -q __vertex_env_warned
            set -g __vertex_env_warned 1
            set -l why "export exited with status $code"
            test $code -eq 127; and set why "$__vertex_env_cmd[1]: command not found"
            test $code -eq 126; and set why "$__vertex_env_cmd[1]: not executable"
            printf '%s\n' "vertex-env: could not refresh the token ($why); keeping the old variables (run '$__vertex_env_cmd export' to see why)" >&2
        end
    end
    return $previous_status
end
