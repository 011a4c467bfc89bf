#!/usr/bin/env bash
# profile-proxy.sh — where mesh-proxy spends its instructions and system
# calls per request (issue 21), repeatable on a loaded machine: instruction
# counts under callgrind do not depend on what else runs.
#
# Method
#   * The same loopback layout, policy, certificates and app as
#     scripts/bench-proxy.sh (scripts/lib/proxy-bench.sh). Both proxies run
#     under valgrind's callgrind (MODE=callgrind), or natively with strace
#     counting their system calls (MODE=strace).
#   * Per target, closed loop: WARMUP requests (connections, pools and TLS
#     sessions established), then the counters are zeroed
#     (`callgrind_control -z`, or strace attached), REQUESTS requests are
#     sent by curl over CONNECTIONS keep-alive connections (one curl each), and the counters
#     are dumped (`callgrind_control -d`, or strace detached).
#       proxy    curl → server mesh-proxy inbound (plaintext) → mesh-echo
#       meshed   curl → client mesh-proxy outbound → mTLS → server mesh-proxy → mesh-echo
#       haproxy  curl → HAProxy (as in scripts/bench-proxy.sh) → mesh-echo: the
#                baseline's own counts, measured alike
#   * The proxies run with `--reload-interval 3600s` (PROXY_ARGS_EXTRA): the
#     periodic re-reading of config, identity and discovery files is work
#     per second, which valgrind's slowdown would spread over requests.
#   * Reported per request: instructions of each proxy process (callgrind's
#     Ir), the top functions by their own instructions and by inclusive
#     instructions (callgrind_annotate), the code the window ran (distinct
#     64-byte lines of instructions and 4 KiB pages, from the dump's
#     per-instruction costs, `--dump-instr=yes`: what a request that finds
#     the caches cold has to fetch again), or system calls by name (strace -c)
#     and minor page faults (/proc/PID/stat), and each proxy's peak RSS
#     up to the window's end (VmHWM, /proc/PID/status).
#     With CONNECTIONS=1 every request is its own wake-up, as at low rates.
#
# Usage: scripts/profile-proxy.sh           (from the repository root)
# Environment:
#   MODE=callgrind      or strace
#   REQUESTS=20000      measured requests per target
#   WARMUP=500          requests before the counters are zeroed
#   CONNECTIONS=1       keep-alive connections (closed loop)
#   BODY_BYTES=0        >0: POST a body of that size, echoed back (`x-echo-body`)
#   TARGETS="proxy meshed"   (and haproxy, the baseline, when named)
#   TOP=25              functions listed per table
#   BIN_DIR, TOOLS_DIR, SKIP_BUILD, KEEP_TMP as for scripts/bench-proxy.sh (its
#   binaries carry line tables, so callgrind names the functions)
# Needs: valgrind (callgrind_control, callgrind_annotate) or strace, curl,
# taskset, python3.

set -euo pipefail

MODE=${MODE:-callgrind}
REQUESTS=${REQUESTS:-20000}
WARMUP=${WARMUP:-500}
CONNECTIONS=${CONNECTIONS:-1}
BODY_BYTES=${BODY_BYTES:-0}
TARGETS=${TARGETS:-"proxy meshed"}
TOP=${TOP:-25}

REPO=$(cd "$(dirname "$0")/.." && pwd)
BENCH_NAME=profile-proxy
# Proxies under valgrind start some 50 times slower.
READY_WAIT=${READY_WAIT:-180}
# The proxies re-read their config, identity and discovery files every
# --reload-interval: work per second, not per request, which would swell
# the per-request counts as much as valgrind slows the requests down.
PROXY_ARGS_EXTRA=${PROXY_ARGS_EXTRA:---reload-interval 3600s}
# shellcheck source=lib/proxy-bench.sh
source "$REPO/scripts/lib/proxy-bench.sh"

require() {
    case $MODE in
        callgrind) for t in valgrind callgrind_control callgrind_annotate; do
            command -v $t >/dev/null || die "$t not found: apt-get install valgrind"
        done ;;
        strace) command -v strace >/dev/null || die "strace not found: apt-get install strace" ;;
        *) die "MODE is callgrind or strace, not $MODE" ;;
    esac
    command -v curl >/dev/null || die "curl not found"
    command -v python3 >/dev/null || die "python3 not found"
}


# Under callgrind the proxies are not pinned: valgrind runs one thread at a
# time anyway, and the counts do not depend on the core.
if [[ $MODE == callgrind ]]; then
    CALLGRIND=(valgrind -q --tool=callgrind --dump-instr=yes)
    launch_proxy() {
        local name=$1
        shift
        exec "${CALLGRIND[@]}" --callgrind-out-file="$WORK/callgrind.$name" "$@"
    }
    run_haproxy() {
        exec "${CALLGRIND[@]}" --callgrind-out-file="$WORK/callgrind.$1" haproxy -db -f "$WORK/$1.cfg"
    }
fi

# The processes of $TARGET by name, for the counters: the mesh-proxies
# (for `proxy`, the server one alone; the client proxy idles meanwhile), or
# HAProxy.
proxies() {
    case $TARGET in
        haproxy) echo "haproxy $HAPROXY_PID" ;;
        proxy) echo "server $SERVER_PROXY_PID" ;;
        meshed) echo "server $SERVER_PROXY_PID"; echo "client $CLIENT_PROXY_PID" ;;
    esac
}

# load N: N requests to the target, closed loop: one curl per connection,
# each sending its share of the requests in turn over one keep-alive
# connection. Fails unless every answer is 200.
load() {
    local n=$1 c pids=() body=()
    target_of "$TARGET"
    if ((BODY_BYTES > 0)); then
        [[ -f $WORK/body.bin ]] || head -c "$BODY_BYTES" /dev/urandom >"$WORK/body.bin"
        # No `Expect: 100-continue` round trip: oha in the benchmark sends none.
        body=(--data-binary "@$WORK/body.bin" -H "x-echo-body: 1" -H "Expect:")
    fi
    for c in $(seq "$CONNECTIONS"); do
        local share=$((n / CONNECTIONS + (c <= n % CONNECTIONS ? 1 : 0)))
        awk -v n="$share" -v u="$TARGET_URL" 'BEGIN { for (i = 0; i < n; i++) printf "url = \"%s\"\n", u }' \
            >"$WORK/curl-$c.cfg"
        curl -s -K "$WORK/curl-$c.cfg" "${TARGET_ARGS[@]}" "${body[@]}" -w '%{stderr}%{http_code}\n' \
            >/dev/null 2>"$WORK/codes-$c" &
        pids+=($!)
    done
    for c in "${pids[@]}"; do wait "$c" || true; done
    local ok
    ok=$(cat "$WORK"/codes-* | grep -c '^200$' || true)
    ((ok == n)) || die "$TARGET: $ok of $n requests answered 200 ($(sort "$WORK"/codes-* | uniq -c | tr '\n' ' '))"
    rm -f "$WORK"/codes-* "$WORK"/curl-*.cfg
}

begin_window() {
    local name pid
    while read -r name pid; do
        case $MODE in
            callgrind) callgrind_control -z "$pid" >/dev/null ;;
            strace)
                minor_faults "$pid" >"$WORK/faults.$TARGET.$name"
                strace -f -c -o "$WORK/strace.$TARGET.$name" -p "$pid" 2>/dev/null &
                STRACES+=($!)
                ;;
        esac
    done < <(proxies)
    # strace attaches asynchronously; let it reach every thread.
    [[ $MODE == strace ]] && sleep 1
    return 0
}

end_window() {
    local name pid
    case $MODE in
        callgrind)
            # Each dump is numbered (callgrind.NAME.1, .2, ...); the previous
            # ones were renamed, so the one file left is this window's.
            local dumps
            while read -r name pid; do
                callgrind_control -d "$pid" >/dev/null
                dumps=("$WORK/callgrind.$name".*)
                [[ ${#dumps[@]} == 1 && -f ${dumps[0]} ]] || die "expected one new dump of the $name proxy: ${dumps[*]}"
                mv "${dumps[0]}" "$WORK/callgrind.$TARGET.$name"
            done < <(proxies)
            ;;
        strace)
            for pid in "${STRACES[@]}"; do kill -INT "$pid"; done
            for pid in "${STRACES[@]}"; do wait "$pid" 2>/dev/null || true; done
            while read -r name pid; do
                minor_faults "$pid" >>"$WORK/faults.$TARGET.$name"
                peak_rss "$pid" >"$WORK/peak.$TARGET.$name"
            done < <(proxies)
            ;;
    esac
}

# peak_rss PID: the process's peak resident set so far, kB (`VmHWM`): the
# most any window up to now held, this one included.
peak_rss() {
    awk '/^VmHWM:/ {print $2}' "/proc/$1/status"
}

# minor_faults PID: the process's minor page faults so far, all threads
# (`minflt`, field 10 of /proc/PID/stat; the name in field 2 has no spaces).
minor_faults() {
    awk '{print $10}' "/proc/$1/stat"
}

# The functions of one callgrind dump, per request: TOP by own
# instructions, then TOP by inclusive instructions.
top_functions() {
    local file=$1 label=$2 inclusive
    for inclusive in no yes; do
        callgrind_annotate --auto=no --inclusive=$inclusive --threshold=100 "$file" 2>/dev/null |
            python3 "$REPO/scripts/lib/callgrind_top.py" "$REQUESTS" "$TOP" "$label" "$inclusive"
    done
}

# measured: "TARGET NAME" of every process measured, target by target.
measured() {
    local name pid
    for TARGET in "${STARTED[@]}"; do
        while read -r name pid; do echo "$TARGET $name"; done < <(proxies)
    done
}

report() {
    local t name
    local what="GET"
    ((BODY_BYTES == 0)) || what="POST of $BODY_BYTES bytes echoed back"
    echo "**$MODE**: $REQUESTS requests ($what) per target over $CONNECTIONS keep-alive connection(s), after $WARMUP warm-up requests"
    echo
    case $MODE in
        callgrind)
            echo "| target | process | instructions per request |"
            echo "|---|---|---|"
            local last="" sum=0 ir
            while read -r t name; do
                if [[ $t != "$last" && -n $last ]]; then
                    echo "| $last | **all** | **$((sum / REQUESTS))** |"
                    sum=0
                fi
                last=$t
                ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$WORK/callgrind.$t.$name")
                sum=$((sum + ir))
                echo "| $t | $name | $((ir / REQUESTS)) |"
            done < <(measured)
            echo "| $last | **all** | **$((sum / REQUESTS))** |"
            echo
            echo "Code run in the window (distinct, not per request):"
            echo
            echo "| target | process | KiB of 64-byte lines | 4 KiB pages |"
            echo "|---|---|---|---|"
            while read -r t name; do
                python3 "$REPO/scripts/lib/callgrind_footprint.py" "$WORK/callgrind.$t.$name" "$t" "$name"
            done < <(measured)
            while read -r t name; do
                top_functions "$WORK/callgrind.$t.$name" "$t, $name"
            done < <(measured)
            ;;
        strace)
            while read -r t name; do
                python3 "$REPO/scripts/lib/strace_per_request.py" "$WORK/strace.$t.$name" "$REQUESTS" "$t, $name"
                awk -v n="$REQUESTS" 'NR == 1 {a = $1} NR == 2 {printf "\nminor page faults per request: %.1f\n", ($1 - a) / n}' \
                    "$WORK/faults.$t.$name"
                echo "peak RSS (VmHWM) so far: $(cat "$WORK/peak.$t.$name") kB"
            done < <(measured)
            ;;
    esac
}

main() {
    require
    build_binaries
    [[ -x $BIN_DIR/mesh-echo ]] || die "$BIN_DIR/mesh-echo missing (build, or set BIN_DIR)"
    # Both proxies always run, so each target's figures include what the
    # other proxy does while idle (nothing, between its timers).
    if [[ " $TARGETS " == *" haproxy "* ]]; then
        start_targets haproxy proxy meshed
    else
        start_targets proxy meshed
    fi
    local wanted=()
    for TARGET in "${STARTED[@]}"; do [[ " $TARGETS " == *" $TARGET "* ]] && wanted+=("$TARGET"); done
    ((${#wanted[@]})) || die "no target to profile (needs mesh-certs and meshc in $BIN_DIR)"
    STARTED=("${wanted[@]}")
    for TARGET in "${STARTED[@]}"; do
        log "$TARGET: $WARMUP warm-up requests"
        load "$WARMUP"
        STRACES=()
        begin_window
        log "$TARGET: $REQUESTS requests under $MODE"
        local start=$SECONDS
        load "$REQUESTS"
        end_window
        log "$TARGET: done in $((SECONDS - start)) s"
    done
    report
}

main "$@"
