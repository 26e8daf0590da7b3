# vertex-env prompt hook for zsh.  Install once: vertex-env hook zsh --install >> ~/.zshrc
# (no process at shell start-up), or put  eval "$(vertex-env hook zsh)"  in ~/.zshrc.
#
# Before each prompt it compares the clock with VERTEX_ENV_EXPIRES_AT in pure zsh and re-exports only when the
# token is within VERTEX_ENV_HOOK_MARGIN seconds (default 300) of expiry, or not set yet: while the token is
# fresh a prompt starts no process at all. A failed refresh keeps the old variables, warns once, leaves $?
# as it was, and is not retried for VERTEX_ENV_HOOK_RETRY seconds (default 30), so an offline laptop does not
# wait for a network timeout at every prompt; each try has a deadline of VERTEX_ENV_HOOK_TIMEOUT seconds
# (default 5). The profile and options come from VERTEX_ENV_* variables.

# @installed@
# The vertex-env that printed this hook, by absolute path (it need not be on PATH).
typeset -ga __vertex_env_cmd
__vertex_env_cmd=(vertex-env)

# The clock without a process: $EPOCHSECONDS from zsh/datetime; without that module, `date` runs once, here,
# and $SECONDS counts from it.
if ! zmodload -F zsh/datetime p:EPOCHSECONDS 2>/dev/null; then
    typeset -gi _vertex_env_clock_base=$(( $(command date +%s) - SECONDS ))
fi

_vertex_env_hook() {
    local -i _vertex_env_status=$?
    # Inside `vertex-env run --proxy` the variables point at the proxy, which keeps tokens fresh itself.
    [[ ${VERTEX_ENV_ACTIVE-} == proxy ]] && return $_vertex_env_status
    emulate -L zsh
    local -i now
    local expires=${VERTEX_ENV_EXPIRES_AT:-0} margin=${VERTEX_ENV_HOOK_MARGIN:-300} out
    local retry=${VERTEX_ENV_HOOK_RETRY:-30} why
    local -i code=0
    if (( ${+EPOCHSECONDS} )); then
        now=$EPOCHSECONDS
    else
        now=$(( _vertex_env_clock_base + SECONDS ))
    fi
    [[ $expires == <-> ]] || expires=0
    [[ $margin == <-> ]] || margin=300
    [[ $retry == <-> ]] || retry=30
    if (( expires - now > margin || now < ${_vertex_env_not_before:-0} )); then
        return $_vertex_env_status
    fi
    out=$(VERTEX_ENV_TIMEOUT=${VERTEX_ENV_HOOK_TIMEOUT:-5} command "${__vertex_env_cmd[@]}" export --format sh 2>/dev/null) || code=$?
    if (( code == 0 )) && [[ -n $out ]]; then
        eval "$out"
        typeset -g _vertex_env_warned=
        typeset -gi _vertex_env_not_before=0
        expires=${VERTEX_ENV_EXPIRES_AT:-0}
        # A token served within the margin (tokens shorter-lived than the margin): look again halfway to expiry.
        if [[ $expires == <-> ]] && (( expires - now <= margin )); then
            _vertex_env_not_before=$(( now + (expires - now) / 2 ))
        fi
    else
        typeset -gi _vertex_env_not_before=$(( now + retry ))
        if [[ -z ${_vertex_env_warned-} ]]; then
            typeset -g _vertex_env_warned=1
            case $code in
            127) why="${__vertex_env_cmd[1]}: command not found" ;;
            126) why="${__vertex_env_cmd[1]}: not executable" ;;
            *) why="export exited with status $code" ;;
            esac
            print -u2 -r -- "vertex-env: could not refresh the token ($why); keeping the old variables (run '${__vertex_env_cmd[*]} export' to see why)"
        fi
    fi
    return $_vertex_env_status
}

# First in precmd_functions, so later hooks still see the command's $?; never added twice.
typeset -ag precmd_functions
if (( ! ${precmd_functions[(I)_vertex_env_hook]} )); then
    precmd_functions=(_vertex_env_hook $precmd_functions)
fi
