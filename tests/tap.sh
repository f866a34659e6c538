# tap.sh — the TAP helpers the shell tests share (sourced: . "$(dirname "$0")/tap.sh").
#
# Sets n and failed (case counters), started (seconds since the epoch) and TO (a kill after
# ${TAP_TIMEOUT:-120} s when timeout(1) exists), and defines:
#   run CMD...        stdin from ${STDIN:-/dev/null}, stdout to $T/out, stderr to $T/err,
#                     status in $rc
#   verdict DESC WHY  one "ok"/"not ok" line per case; WHY empty means it passed (a failure
#                     prints WHY and the first lines of $T/err)
#   skip DESC REASON  an "ok ... # SKIP" line

TO=""
if command -v timeout >/dev/null 2>&1; then TO="timeout -s KILL ${TAP_TIMEOUT:-120}"; fi

n=0
failed=0
started=$(date +%s)

run() {
    $TO "$@" <"${STDIN:-/dev/null}" >"$T/out" 2>"$T/err"
    rc=$?
}

verdict() {
    n=$((n + 1))
    if [ -z "$2" ]; then
        printf 'ok %s - %s\n' "$n" "$1"
    else
        failed=$((failed + 1))
        printf 'not ok %s - %s\n' "$n" "$1"
        printf '#   %s\n' "${2#; }"
        if [ -s "$T/err" ]; then sed -n '1,4s/^/#   stderr: /p' "$T/err" | cut -c1-300; fi
    fi
}

skip() {
    n=$((n + 1))
    printf 'ok %s - %s # SKIP %s\n' "$n" "$1" "$2"
}
