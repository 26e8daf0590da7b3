# vertex-env prompt hook for bash.  Install: eval "$(vertex-env hook bash)"  in ~/.bashrc
#
# Before each prompt it compares the clock with VERTEX_ENV_EXPIRES_AT in pure bash and re-exports only when the
# token is within VERTEX_ENV_HOOK_MARGIN seconds (default 300) of expiry, or not set yet: while the token is
# fresh a prompt starts no process at all. A failed refresh keeps the old variables, warns once, and leaves $?
# as it was.

__vertex_env_hook() {
    local previous_exit_status=$?
    local now expires=${VERTEX_ENV_EXPIRES_AT:-0} margin=${VERTEX_ENV_HOOK_MARGIN:-300} out
    if [[ -n ${EPOCHSECONDS-} ]]; then
        now=$EPOCHSECONDS
    else
        printf -v now '%(%s)T' -1
    fi
    [[ $expires =~ ^[0-9]+$ ]] || expires=0
    [[ $margin =~ ^[0-9]+$ ]] || margin=300
    if ((expires - now > margin)); then
        return $previous_exit_status
    fi
    if out=$(command vertex-env export --format sh 2>/dev/null) && [[ -n $out ]]; then
        eval "$out"
        __vertex_env_warned=
    elif [[ -z ${__vertex_env_warned-} ]]; then
        __vertex_env_warned=1
        printf '%s\n' "vertex-env: could not refresh the token; keeping the old variables (run 'vertex-env export' to see why)" >&2
    fi
    return $previous_exit_status
}

if [[ ";${PROMPT_COMMAND[*]:-};" != *";__vertex_env_hook;"* ]]; then
    if [[ "$(declare -p PROMPT_COMMAND 2>&1)" == "declare -a"* ]]; then
        PROMPT_COMMAND=(__vertex_env_hook "${PROMPT_COMMAND[@]}")
    else
        PROMPT_COMMAND="__vertex_env_hook${PROMPT_COMMAND:+;$PROMPT_COMMAND}"
    fi
fi
