#!/usr/bin/env bash
# bench-proxy.sh — latency, CPU and memory of mesh-proxy against baselines
# (issue 7, "Performance"). A benchmark, not a test: it prints a markdown
# table and never fails on the figures.
#
# Method
#   * The load generator (oha, open loop at a fixed rate with latency
#     correction, keep-alive connections) is pinned to core 0; the app
#     (mesh-echo) and every proxy are pinned to core 1 (taskset).
#   * Targets, each started once by this script and measured in interleaved
#     rounds (round 1: every target at every rate, then round 2, ...), so
#     drift on the machine spreads over all targets alike:
#       direct   oha → mesh-echo
#       haproxy  oha → HAProxy (Debian package, HTTP mode, keep-alive) → mesh-echo
#       proxy    oha → mesh-proxy inbound (explicit mode, plaintext client) → mesh-echo
#       meshed   oha → client mesh-proxy outbound → mTLS → server mesh-proxy inbound → mesh-echo
#   * Per run: p50 / p99 / p99.9 from oha's JSON; CPU per request = the
#     utime+stime delta (/proc/PID/stat) of the proxy processes of that
#     target (haproxy; the server proxy; both proxies) divided by the requests
#     oha completed; memory = VmRSS at the end of the run and VmHWM (peak) of
#     the server-side proxy process. The table shows the median over rounds.
#   * The proxy targets need `meshc` (keygen, build of a tiny policy repo
#     written below) and `mesh-certs` (test CA and workload
#     certificates). When `mesh-certs` is missing they are skipped with
#     a note, and the direct/haproxy figures are still reported.
#
# Usage: scripts/bench-proxy.sh            (from the repository root)
# Environment:
#   RATES="1000 5000"   requests per second to run at
#   DURATION=20s        length of each run
#   ROUNDS=3            interleaved rounds (median reported)
#   CONNECTIONS=16      oha keep-alive connections
#   TARGETS="direct haproxy proxy meshed"
#   BIN_DIR=target/release (or $CARGO_TARGET_DIR/release); SKIP_BUILD=1 to use it as is
#   KEEP_TMP=1          keep the work directory (configs, logs, oha JSON)
# Needs: oha (cargo install oha --locked), haproxy, curl, taskset, python3, 2+ cores.

set -euo pipefail

RATES=${RATES:-"1000 5000"}
DURATION=${DURATION:-20s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-16}
TARGETS=${TARGETS:-"direct haproxy proxy meshed"}
LOAD_CPU=0
APP_CPU=1

REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-$REPO/target}/release}

# Fixed loopback layout. The server "pod" is 127.0.0.2 and the client "pod"
# 127.0.0.3, so the meshed path is authorized by the client's mTLS identity
# rather than by the built-in localhost authorization (127.0.0.1 only).
APP_ADDR=127.0.0.1:18080
HAPROXY_ADDR=127.0.0.1:18081
SERVER_INBOUND=127.0.0.2:8080
SERVER_ADMIN=127.0.0.2:4191
CLIENT_POD_IP=127.0.0.3
CLIENT_OUTBOUND=127.0.0.3:4140
CLIENT_ADMIN=127.0.0.3:4191
SERVICE_HOST=echo.bench.svc.cluster.local:8080

WORK=$(mktemp -d -t bench-proxy.XXXXXX)
PIDS=()

log() { echo "bench-proxy: $*" >&2; }
die() { log "$*"; exit 1; }

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -n ${KEEP_TMP:-} ]]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

require() {
    command -v oha >/dev/null || die "oha not found: cargo install oha --locked"
    command -v haproxy >/dev/null || die "haproxy not found: apt-get install haproxy"
    command -v taskset >/dev/null || die "taskset not found (util-linux)"
    command -v python3 >/dev/null || die "python3 not found"
    command -v curl >/dev/null || die "curl not found"
    (($(nproc) >= 2)) || die "needs 2 cores (load generator and app/proxies on separate cores)"
}

build() {
    if [[ -n ${SKIP_BUILD:-} ]]; then return; fi
    log "building release binaries (mesh-proxy, mesh-echo, mesh-certs, meshc)"
    (cd "$REPO" && cargo build --release --locked -p mesh-proxy -p mesh-devtools --bins -p meshc >&2)
}

# wait_http URL: until something answers on URL (any status), at most 10 s.
wait_http() {
    for _ in $(seq 100); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    die "nothing answers on $1"
}

# wait_line FILE PATTERN: until a process's log says it is ready.
wait_line() {
    for _ in $(seq 100); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    die "$1 never printed '$2'"
}

start_app() {
    taskset -c $APP_CPU "$BIN_DIR/mesh-echo" --listen $APP_ADDR --name echo >"$WORK/app.log" 2>&1 &
    PIDS+=($!)
    APP_PID=$!
    wait_line "$WORK/app.log" "listening $APP_ADDR"
}

start_haproxy() {
    cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend bench
    bind $HAPROXY_ADDR
    default_backend echo
backend echo
    server app $APP_ADDR
EOF
    haproxy -c -q -f "$WORK/haproxy.cfg" || die "haproxy rejected $WORK/haproxy.cfg"
    taskset -c $APP_CPU haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
    PIDS+=($!)
    HAPROXY_PID=$!
    wait_http "http://$HAPROXY_ADDR/"
}

# The policy repo meshc builds: namespace bench with workloads echo (a Server
# on port 8080 that only the client's mesh identity may use) and client.
write_policy() {
    local dir=$1
    mkdir -p "$dir"
    cat >"$dir/app.yaml" <<'EOF'
apiVersion: v1
kind: Namespace
metadata:
  name: bench
  annotations:
    linkerd.io/inject: enabled
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: echo, namespace: bench}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: client, namespace: bench}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: bench}
spec:
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      serviceAccountName: echo
      containers:
        - name: echo
          image: mesh-echo
          ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: bench}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 8080, targetPort: http}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client, namespace: bench}
spec:
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec:
      serviceAccountName: client
      containers:
        - name: client
          image: oha
EOF
    cat >"$dir/policy.yaml" <<'EOF'
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: echo-http, namespace: bench}
spec:
  podSelector: {matchLabels: {app: echo}}
  port: http
  proxyProtocol: HTTP/1
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: client-mtls, namespace: bench}
spec:
  identityRefs:
    - kind: ServiceAccount
      name: client
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: echo-from-client, namespace: bench}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: echo-http}
  requiredAuthenticationRefs:
    - {group: policy.linkerd.io, kind: MeshTLSAuthentication, name: client-mtls}
EOF
}

# Keys, signed configs, certificates and discovery for both proxies.
# Returns 1 (proxy targets skipped) when `mesh-certs` is not there.
prepare_mesh() {
    if ! "$BIN_DIR/mesh-certs" --help >/dev/null 2>&1; then
        log "no mesh-certs in $BIN_DIR: skipping the proxy and meshed targets"
        return 1
    fi
    local meshc="$BIN_DIR/meshc"
    "$meshc" keygen --out "$WORK/keys" >&2
    write_policy "$WORK/repo"
    "$meshc" build "$WORK/repo" --key "$WORK/keys/meshc.key" --out "$WORK/dist" --revision bench >&2
    "$BIN_DIR/mesh-certs" init --dir "$WORK/ca" --trust-domain cluster.local >&2
    for sa in echo client; do
        "$BIN_DIR/mesh-certs" issue --ca-dir "$WORK/ca" --sa $sa --namespace bench --out "$WORK/id-$sa" >&2
    done
    cat >"$WORK/discovery.json" <<EOF
{"services":[{"namespace":"bench","name":"echo","ports":[{"port":8080,"endpoints":[
  {"addr":"$SERVER_INBOUND","identity":"echo.bench.serviceaccount.identity.linkerd.cluster.local"}]}]}]}
EOF
}

start_server_proxy() {
    taskset -c $APP_CPU "$BIN_DIR/mesh-proxy" run --workload Deployment/bench/echo \
        --config "$WORK/dist/configs/bench/deployment-echo.yaml" --trust-key "$WORK/keys/meshc.pub" \
        --identity-dir "$WORK/id-echo" --inbound "$SERVER_INBOUND=$APP_ADDR" --admin $SERVER_ADMIN \
        >"$WORK/server-proxy.log" 2>&1 &
    PIDS+=($!)
    SERVER_PROXY_PID=$!
    wait_http "http://$SERVER_ADMIN/ready"
}

start_client_proxy() {
    taskset -c $APP_CPU "$BIN_DIR/mesh-proxy" run --workload Deployment/bench/client \
        --config "$WORK/dist/configs/bench/deployment-client.yaml" --trust-key "$WORK/keys/meshc.pub" \
        --identity-dir "$WORK/id-client" --discovery "$WORK/discovery.json" \
        --outbound $CLIENT_OUTBOUND --pod-ip $CLIENT_POD_IP --admin $CLIENT_ADMIN \
        >"$WORK/client-proxy.log" 2>&1 &
    PIDS+=($!)
    CLIENT_PROXY_PID=$!
    wait_http "http://$CLIENT_ADMIN/ready"
}

# cpu_ticks PID...: utime+stime of the processes, in clock ticks.
cpu_ticks() {
    local total=0 pid
    for pid in "$@"; do
        # Fields after the parenthesised command name; utime and stime are 14 and 15.
        local f
        read -ra f < <(sed 's/.*) //' "/proc/$pid/stat")
        total=$((total + f[11] + f[12]))
    done
    echo $total
}

status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# run_one TARGET RATE ROUND: one oha run; appends a JSON line to results.jsonl.
run_one() {
    local target=$1 rate=$2 round=$3 url host_args=() pids=() mem_pid=""
    case $target in
        direct) url="http://$APP_ADDR/bench" ;;
        haproxy) url="http://$HAPROXY_ADDR/bench"; pids=($HAPROXY_PID); mem_pid=$HAPROXY_PID ;;
        proxy) url="http://$SERVER_INBOUND/bench"; pids=($SERVER_PROXY_PID); mem_pid=$SERVER_PROXY_PID ;;
        meshed)
            url="http://$CLIENT_OUTBOUND/bench"; host_args=(-H "Host: $SERVICE_HOST")
            pids=($CLIENT_PROXY_PID $SERVER_PROXY_PID); mem_pid=$SERVER_PROXY_PID ;;
    esac
    local out="$WORK/oha-$target-$rate-$round.json" before after
    before=$(cpu_ticks "${pids[@]}")
    taskset -c $LOAD_CPU oha --no-tui --output-format json -q "$rate" -z "$DURATION" -c "$CONNECTIONS" \
        --latency-correction "${host_args[@]}" "$url" >"$out"
    after=$(cpu_ticks "${pids[@]}")
    local rss=0 hwm=0
    if [[ -n $mem_pid ]]; then rss=$(status_kb "$mem_pid" VmRSS); hwm=$(status_kb "$mem_pid" VmHWM); fi
    python3 - "$out" "$target" "$rate" "$round" "$((after - before))" "$(getconf CLK_TCK)" "$rss" "$hwm" \
        >>"$WORK/results.jsonl" <<'EOF'
import json, sys
path, target, rate, rnd, ticks, hz, rss, hwm = sys.argv[1:]
r = json.load(open(path))
codes = {int(k): v for k, v in r.get("statusCodeDistribution", {}).items()}
requests = sum(codes.values())
errors = sum(r.get("errorDistribution", {}).values())
p = r["latencyPercentiles"]
cpu_us = int(ticks) / int(hz) * 1e6 / requests if requests else None
print(json.dumps({
    "target": target, "rate": int(rate), "round": int(rnd), "requests": requests,
    "non_2xx": sum(v for k, v in codes.items() if not 200 <= k < 300), "errors": errors,
    "p50_us": p["p50"] * 1e6, "p99_us": p["p99"] * 1e6, "p999_us": p["p99.9"] * 1e6,
    "cpu_us_per_req": cpu_us, "rss_kb": int(rss), "hwm_kb": int(hwm),
}))
EOF
    log "round $round $target @ ${rate} rps: $(tail -1 "$WORK/results.jsonl")"
}

report() {
    python3 - "$WORK/results.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
def fmt(x, unit=""):
    return "–" if x is None else f"{x:.0f}{unit}"
groups = {}
for r in rows:
    groups.setdefault((r["rate"], r["target"]), []).append(r)
order = ["direct", "haproxy", "proxy", "meshed"]
print("| rate (rps) | target | p50 µs | p99 µs | p99.9 µs | added p50 µs | CPU µs/req | RSS MB (peak) | requests | non-2xx / errors |")
print("|---|---|---|---|---|---|---|---|---|---|")
for rate in sorted({k[0] for k in groups}):
    base = med([r["p50_us"] for r in groups.get((rate, "direct"), [])])
    for t in order:
        g = groups.get((rate, t))
        if not g:
            continue
        p50 = med([r["p50_us"] for r in g])
        added = None if base is None or t == "direct" else p50 - base
        cpu = None if t == "direct" else med([r["cpu_us_per_req"] for r in g])
        mem = "–" if t == "direct" else f"{med([r['rss_kb'] for r in g]) / 1024:.1f} ({max(r['hwm_kb'] for r in g) / 1024:.1f})"
        print(f"| {rate} | {t} | {fmt(p50)} | {fmt(med([r['p99_us'] for r in g]))} | {fmt(med([r['p999_us'] for r in g]))} "
              f"| {fmt(added)} | {'–' if cpu is None else f'{cpu:.1f}'} | {mem} | {sum(r['requests'] for r in g)} "
              f"| {sum(r['non_2xx'] for r in g)} / {sum(r['errors'] for r in g)} |")
print(f"\n{len(rows)} runs; medians over rounds. CPU and RSS are the proxy processes' "
      "(meshed: both proxies' CPU, the server proxy's RSS).")
EOF
}

main() {
    require
    build
    [[ -x $BIN_DIR/mesh-echo ]] || die "$BIN_DIR/mesh-echo missing (build, or set BIN_DIR)"
    start_app
    local targets=()
    for t in $TARGETS; do
        case $t in
            direct) targets+=(direct) ;;
            haproxy) start_haproxy; targets+=(haproxy) ;;
            proxy | meshed) ;;
            *) die "unknown target $t" ;;
        esac
    done
    if [[ " $TARGETS " == *" proxy "* || " $TARGETS " == *" meshed "* ]] && prepare_mesh; then
        start_server_proxy
        [[ " $TARGETS " == *" proxy "* ]] && targets+=(proxy)
        if [[ " $TARGETS " == *" meshed "* ]]; then start_client_proxy; targets+=(meshed); fi
    fi
    log "targets: ${targets[*]}; rates: $RATES; $ROUNDS rounds of $DURATION"
    for round in $(seq "$ROUNDS"); do
        for rate in $RATES; do
            for t in "${targets[@]}"; do run_one "$t" "$rate" "$round"; done
        done
    done
    report
}

main "$@"
