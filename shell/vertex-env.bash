# vertex-env prompt hook for bash.  Install once: vertex-env hook bash --install >> ~/.bashrc
# (no process at shell start-up), or put  eval "$(vertex-env hook bash)"  in ~/.bashrc.
#
# Before each prompt it compares the clock with VERTEX_ENV_EXPIRES_AT in pure bash and re-exports only when the
# token is within VERTEX_ENV_HOOK_MARGIN seconds (default 300) of expiry, or not set yet: while the token is
# fresh a prompt starts no process at all. A failed refresh keeps the old variables, warns once, leaves $?
# as it was, and is not retried for VERTEX_ENV_HOOK_RETRY seconds (default 30), so an offline laptop does not
# wait for a network timeout at every prompt; each try has a deadline of VERTEX_ENV_HOOK_TIMEOUT seconds
# (default 5). The profile and options come from VERTEX_ENV_* variables.

# @installed@
# The vertex-env that printed this hook, by absolute path (it need not be on PATH).
__vertex_env_cmd=(vertex-env)

# The clock without a process: $EPOCHSECONDS (bash >= 5), printf's %(%s)T (bash >= 4.2); older bash (macOS's
# 3.2) runs `date` once, here, and counts from it with $SECONDS.
if [[ -z ${EPOCHSECONDS-} ]] && ((BASH_VERSINFO[0] < 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] < 2))); then
    __vertex_env_clock_base=$(($(command date +%s) - SECONDS))
fi

__vertex_env_hook() {
    local __vertex_env_status=$?
    # Inside `vertex-env run --proxy` the variables point at the proxy, which keeps tokens fresh itself.
    [[ ${VERTEX_ENV_ACTIVE-} == proxy ]] && return $__vertex_env_status
    local now expires=${VERTEX_ENV_EXPIRES_AT:-0} margin=${VERTEX_ENV_HOOK_MARGIN:-300} out
    local retry=${VERTEX_ENV_HOOK_RETRY:-30} code=0 why
    if [[ -n ${EPOCHSECONDS-} ]]; then
        now=$EPOCHSECONDS
    elif [[ -n ${__vertex_env_clock_base-} ]]; then
        now=$((__vertex_env_clock_base + SECONDS))
    else
        printf -v now '%(%s)T' -1
    fi
    [[ $expires =~ ^[0-9]+$ ]] || expires=0
    [[ $margin =~ ^[0-9]+$ ]] || margin=300
    [[ $retry =~ ^[0-9]+$ ]] || retry=30
    if ((expires - now > margin || now < ${__vertex_env_not_before:-0})); then
        return $__vertex_env_status
    fi
    out=$(VERTEX_ENV_TIMEOUT=${VERTEX_ENV_HOOK_TIMEOUT:-5} command "${__vertex_env_cmd[@]}" export --format sh 2>/dev/null) || code=$?
    if ((code == 0)) && [[ -n $out ]]; then
        eval "$out"
        __vertex_env_warned=
        __vertex_env_not_before=0
        expires=${VERTEX_ENV_EXPIRES_AT:-0}
        # A token served within the margin (tokens shorter-lived than the margin): look again halfway to expiry.
        if [[ $expires =~ ^[0-9]+$ ]] && ((expires - now <= margin)); then
            __vertex_env_not_before=$((now + (expires - now) / 2))
        fi
    else
        __vertex_env_not_before=$((now + retry))
        if [[ -z ${__vertex_env_warned-} ]]; then
            __vertex_env_warned=1
            case $code in
            127) why="${__vertex_env_cmd[0]}: command not found" ;;
            126) why="${__vertex_env_cmd[0]}: not executable" ;;
            *) why="export exited with status $code" ;;
            esac
            printf '%s\n' "vertex-env: could not refresh the token ($why); keeping the old variables (run '${__vertex_env_cmd[*]} export' to see why)" >&2
        fi
    fi
    return $__vertex_env_status
}

# First in PROMPT_COMMAND, so every entry after it still sees the command's $?; a string or (bash >= 5.1) an
# array; never added twice.
if [[ " ${PROMPT_COMMAND[*]-} " != *__vertex_env_hook* ]]; then
    if ((${#PROMPT_COMMAND[@]} > 1)); then
        PROMPT_COMMAND=(__vertex_env_hook "${PROMPT_COMMAND[@]}")
    else
        PROMPT_COMMAND="__vertex_env_hook${PROMPT_COMMAND:+;$PROMPT_COMMAND}"
    fi
fi
