# vertex-env prompt hook for zsh.  Install: eval "$(vertex-env hook zsh)"  in ~/.zshrc
#
# Before each prompt it compares the clock with VERTEX_ENV_EXPIRES_AT in pure zsh and re-exports only when the
# token is within VERTEX_ENV_HOOK_MARGIN seconds (default 300) of expiry, or not set yet: while the token is
# fresh a prompt starts no process at all. A failed refresh keeps the old variables, warns once, and leaves $?
# as it was.

zmodload -F zsh/datetime p:EPOCHSECONDS 2>/dev/null || zmodload zsh/datetime

_vertex_env_hook() {
    local previous_exit_status=$?
    local expires=${VERTEX_ENV_EXPIRES_AT:-0} margin=${VERTEX_ENV_HOOK_MARGIN:-300} out
    [[ $expires == <-> ]] || expires=0
    [[ $margin == <-> ]] || margin=300
    if (( expires - EPOCHSECONDS > margin )); then
        return $previous_exit_status
    fi
    if out=$(command vertex-env export --format sh 2>/dev/null) && [[ -n $out ]]; then
        eval "$out"
        _vertex_env_warned=
    elif [[ -z ${_vertex_env_warned-} ]]; then
        _vertex_env_warned=1
        print -u2 -r -- "vertex-env: could not refresh the token; keeping the old variables (run 'vertex-env export' to see why)"
    fi
    return $previous_exit_status
}

autoload -Uz add-zsh-hook
add-zsh-hook precmd _vertex_env_hook
