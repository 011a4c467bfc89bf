#!/usr/bin/env bash
# bench-proxy.sh — latency, CPU and memory of mesh-proxy against baselines
# (issues 7 and 21, "Performance" in proxy/README.md). A benchmark, not a
# test: it prints markdown tables and never fails on the figures.
#
# Method
#   * The load generator (oha, open loop at a fixed rate with latency
#     correction, keep-alive connections) is pinned to core 0; the app
#     (mesh-echo) and every proxy are pinned to core 1 (taskset).
#   * Targets, each started once by this script (scripts/lib/proxy-bench.sh):
#       direct   oha → mesh-echo
#       haproxy  oha → HAProxy (Debian package, HTTP mode, keep-alive, 1 thread) → mesh-echo
#       nginx    oha → nginx (Debian package, 1 worker, keep-alive upstream, unbuffered) → mesh-echo
#       proxy    oha → mesh-proxy inbound (explicit mode, plaintext client) → mesh-echo
#       meshed   oha → client mesh-proxy outbound → mTLS → server mesh-proxy inbound → mesh-echo
#       haproxy-meshed
#                oha → client HAProxy (plaintext in) → mTLS → server HAProxy → mesh-echo:
#                `meshed` with HAProxy in both proxies' places, on the same
#                pod addresses, pinned alike, HTTP mode and keep-alive on
#                every leg. The TLS is the mesh's: the certificates and
#                identities mesh-certs issued for the mesh-proxies (ECDSA
#                P-256), TLS 1.3 only, AES-128-GCM first, no resumption, a
#                certificate required and verified on both sides, the
#                client checking the server's name and the server allowing
#                only the client's identity (a check at start shows it, with
#                openssl s_client). What the meshed path costs on this
#                machine whatever the proxy: the report puts `meshed`'s
#                added latency beside the absolute target and as a multiple
#                of this target's.
#   * Scenarios, all measured in the same interleaved rounds (round 1: every
#     scenario's every load on every target, then round 2, ...), so drift on
#     the machine spreads over all targets alike:
#       base   GET at each of RATES, CONNECTIONS keep-alive connections
#       ramp   GET at RAMP_RATE over each of RAMP_CONNECTIONS keep-alive connections
#       body   POST of BODY_BYTES echoed back (`x-echo-body`: as large a
#              response), at BODY_RATE, CONNECTIONS connections
#     and, once after the rounds:
#       soak   SOAK_DURATION at SOAK_RATE on each proxy target, with every
#              proxy process's RSS at the start and at the end
#   * Per run: p50 / p99 / p99.9 from oha's JSON; CPU per request = the
#     utime+stime delta (/proc/PID/stat) of the target's proxy processes
#     (haproxy; nginx; the server proxy; both proxies; both HAProxies) divided by the
#     requests oha completed, with the system (kernel) part shown apart;
#     memory = VmRSS at the end of the run and VmHWM (peak) of each of them.
#     The tables show the median over rounds, and for the proxies the ratio
#     of their added latency and CPU to HAProxy's.
#   * The proxy targets need `meshc` (keygen, build of a tiny policy repo)
#     and `mesh-certs` (test CA and workload certificates; haproxy-meshed
#     uses them too). When `mesh-certs` is missing they are skipped with a
#     note. The proxies get the build's shared Service policies
#     (`--service-policies`) whenever the build wrote any.
#
# Usage: scripts/bench-proxy.sh            (from the repository root)
# Environment:
#   RATES="1000 5000"   base: requests per second
#   CONNECTIONS=16      base and body: oha keep-alive connections
#   RAMP_RATE=5000 RAMP_CONNECTIONS="16 64 256"
#   BODY_RATE=200 BODY_BYTES=1048576
#   SOAK_RATE=5000 SOAK_DURATION=5m
#   SCENARIOS="base ramp body soak"
#   DURATION=20s        length of each run (not the soak's)
#   ROUNDS=3            interleaved rounds (median reported)
#   TARGETS="direct haproxy nginx proxy haproxy-meshed meshed"
#   BIN_DIR=target/proxy  mesh-proxy and mesh-echo, built with the proxy's cargo
#                       profile (Cargo.toml [profile.proxy], as its image ships);
#                       SKIP_BUILD=1 to use what is there as is
#   TOOLS_DIR           where meshc and mesh-certs are (any build does): target/release,
#                       or BIN_DIR when that is given
#   KEEP_TMP=1          keep the work directory (configs, logs, oha JSON)
# A quick end-to-end check of the script itself (figures meaningless):
#   DURATION=2s ROUNDS=1 SOAK_DURATION=4s scripts/bench-proxy.sh
# Needs: oha (cargo install oha --locked), haproxy, nginx, curl, openssl,
# taskset, python3, 2+ cores.

set -euo pipefail

RATES=${RATES:-"1000 5000"}
CONNECTIONS=${CONNECTIONS:-16}
RAMP_RATE=${RAMP_RATE:-5000}
RAMP_CONNECTIONS=${RAMP_CONNECTIONS:-"16 64 256"}
BODY_RATE=${BODY_RATE:-200}
BODY_BYTES=${BODY_BYTES:-1048576}
SOAK_RATE=${SOAK_RATE:-5000}
SOAK_DURATION=${SOAK_DURATION:-5m}
SCENARIOS=${SCENARIOS:-"base ramp body soak"}
DURATION=${DURATION:-20s}
ROUNDS=${ROUNDS:-3}
TARGETS=${TARGETS:-"direct haproxy nginx proxy haproxy-meshed meshed"}

REPO=$(cd "$(dirname "$0")/.." && pwd)
BENCH_NAME=bench-proxy
# shellcheck source=lib/proxy-bench.sh
source "$REPO/scripts/lib/proxy-bench.sh"

require() {
    command -v oha >/dev/null || die "oha not found: cargo install oha --locked"
    [[ " $TARGETS " != *" haproxy"[\ -]* ]] || command -v haproxy >/dev/null || die "haproxy not found: apt-get install haproxy"
    [[ " $TARGETS " != *" haproxy-meshed "* ]] || command -v openssl >/dev/null || die "openssl not found (its s_client checks haproxy-meshed's mTLS)"
    [[ " $TARGETS " != *" nginx "* ]] || command -v nginx >/dev/null || die "nginx not found: apt-get install nginx"
    command -v taskset >/dev/null || die "taskset not found (util-linux)"
    command -v python3 >/dev/null || die "python3 not found"
    command -v curl >/dev/null || die "curl not found"
    (($(nproc) >= 2)) || die "needs 2 cores (load generator and app/proxies on separate cores)"
    # 256 connections per target, both sides of the loopback.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}


# cpu_ticks PID...: "user system" ticks of the processes.
cpu_ticks() {
    local user=0 sys=0 pid f
    for pid in "$@"; do
        # Fields after the parenthesised command name; utime and stime are 14 and 15.
        read -ra f < <(sed 's/.*) //' "/proc/$pid/stat")
        user=$((user + f[11]))
        sys=$((sys + f[12]))
    done
    echo "$user $sys"
}

status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# mem_of PID...: "rss,hwm" in kB per process, space-separated.
mem_of() {
    local pid out=()
    for pid in "$@"; do out+=("$(status_kb "$pid" VmRSS),$(status_kb "$pid" VmHWM)"); done
    echo "${out[*]}"
}

# run_one SCENARIO TARGET RATE CONNECTIONS ROUND [DURATION]: one oha run;
# appends a JSON line to results.jsonl.
run_one() {
    local scenario=$1 target=$2 rate=$3 conns=$4 round=$5 duration=${6:-$DURATION} extra=()
    target_of "$target"
    if [[ $scenario == body ]]; then
        extra=(-m POST -D "$WORK/body.bin" -H "x-echo-body: 1" -H "content-type: application/octet-stream")
    fi
    local out="$WORK/oha-$scenario-$target-$rate-$conns-$round.json" before after mem_start=""
    [[ $scenario == soak ]] && mem_start=$(mem_of "${TARGET_PIDS[@]}")
    before=$(cpu_ticks "${TARGET_PIDS[@]}")
    taskset -c "$LOAD_CPU" oha --no-tui --output-format json -q "$rate" -z "$duration" -c "$conns" \
        --latency-correction "${TARGET_ARGS[@]}" "${extra[@]}" "$TARGET_URL" >"$out"
    after=$(cpu_ticks "${TARGET_PIDS[@]}")
    python3 - "$out" "$scenario" "$target" "$rate" "$conns" "$round" "$before" "$after" "$(getconf CLK_TCK)" \
        "$(mem_of "${TARGET_PIDS[@]}")" "$mem_start" >>"$WORK/results.jsonl" <<'EOF'
import json, sys
path, scenario, target, rate, conns, rnd, before, after, hz, mem, mem_start = sys.argv[1:]
r = json.load(open(path))
codes = {int(k): v for k, v in r.get("statusCodeDistribution", {}).items()}
requests = sum(codes.values())
(u0, s0), (u1, s1) = [map(int, x.split()) for x in (before, after)]
per_req = lambda ticks: ticks / int(hz) * 1e6 / requests if requests else None
mems = lambda s: [[int(v) for v in m.split(",")] for m in s.split()]
p = r["latencyPercentiles"]
print(json.dumps({
    "scenario": scenario, "target": target, "rate": int(rate), "connections": int(conns), "round": int(rnd),
    "requests": requests, "non_2xx": sum(v for k, v in codes.items() if not 200 <= k < 300),
    "errors": sum(r.get("errorDistribution", {}).values()),
    "p50_us": p["p50"] * 1e6, "p99_us": p["p99"] * 1e6, "p999_us": p["p99.9"] * 1e6,
    "cpu_us_per_req": per_req(u1 - u0 + s1 - s0), "sys_us_per_req": per_req(s1 - s0),
    "mem_kb": mems(mem), "mem_start_kb": mems(mem_start),
}))
EOF
    log "round $round $scenario $target @ $rate rps, $conns conns: $(tail -1 "$WORK/results.jsonl")"
}

# The loads of the interleaved scenarios: "SCENARIO RATE CONNECTIONS" lines.
loads() {
    local s r c
    for s in $SCENARIOS; do
        case $s in
            base) for r in $RATES; do echo "base $r $CONNECTIONS"; done ;;
            ramp) for c in $RAMP_CONNECTIONS; do echo "ramp $RAMP_RATE $c"; done ;;
            body) echo "body $BODY_RATE $CONNECTIONS" ;;
            soak) ;;
            *) die "unknown scenario $s" ;;
        esac
    done
}

report() {
    python3 "$REPO/scripts/lib/bench_proxy_report.py" "$WORK/results.jsonl"
}

main() {
    require
    build_binaries
    [[ -x $BIN_DIR/mesh-echo ]] || die "$BIN_DIR/mesh-echo missing (build, or set BIN_DIR)"
    head -c "$BODY_BYTES" /dev/urandom >"$WORK/body.bin"
    # shellcheck disable=SC2086
    start_targets $TARGETS
    local load_lines scenario rate conns round t
    load_lines=$(loads)
    log "targets: ${STARTED[*]}; scenarios: $SCENARIOS; $ROUNDS rounds of $DURATION"
    for round in $(seq "$ROUNDS"); do
        while read -r scenario rate conns; do
            [[ -n $scenario ]] || continue
            for t in "${STARTED[@]}"; do run_one "$scenario" "$t" "$rate" "$conns" "$round"; done
        done <<<"$load_lines"
    done
    if [[ " $SCENARIOS " == *" soak "* ]]; then
        for t in "${STARTED[@]}"; do
            [[ $t == direct ]] || run_one soak "$t" "$SOAK_RATE" "$CONNECTIONS" 1 "$SOAK_DURATION"
        done
    fi
    report
}

main "$@"
