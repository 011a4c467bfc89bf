#!/usr/bin/env bash
# local-demo.sh — a whole mesh on one machine, no Kubernetes.
#
#   scripts/local-demo.sh            # run it, show a few requests, keep running until Ctrl-C
#   scripts/local-demo.sh --check    # the same, then exit (non-zero if a request is not as predicted)
#   scripts/local-demo.sh --serve    # start everything and wait, to try requests by hand
#
# What runs, all on loopback addresses of this machine:
#   * meshc keygen + meshc build of policies-examples/podinfo-canary into dist/;
#   * mesh-runtime in file mode over dist/ (configs, endpoints, certificates);
#   * for each workload (frontend, podinfo-primary, podinfo-canary): a
#     mesh-echo app and a mesh-proxy that gets its certificate from the
#     runtime with a ServiceAccount token and its signed config over mTLS;
#   * then requests through the frontend's proxy (split, header routing,
#     404 for unmatched routes) and straight to podinfo (an unmeshed client
#     is refused), each next to what `meshc reach` or the example says.
#
# Needs: cargo, curl. Builds debug binaries into $CARGO_TARGET_DIR (or target/).

set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CARGO_TARGET_DIR:-$REPO/target}/debug
EXAMPLE=$REPO/policies-examples/podinfo-canary
WORK=$(mktemp -d -t meshc-demo.XXXXXX)
PIDS=()
CHECK=${1:-}

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ -n ${KEEP:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say() { printf '\n== %s\n' "$*"; }

say "building meshc, mesh-proxy, mesh-runtime, mesh-echo, mesh-certs"
(cd "$REPO" && cargo build -q -p meshc -p mesh-proxy -p mesh-runtime -p mesh-devtools --bins)

say "signing the example's configs (meshc build)"
"$BIN/meshc" keygen --out "$WORK/keys" >/dev/null
"$BIN/meshc" build "$EXAMPLE" --key "$WORK/keys/meshc.key" --out "$WORK/dist" --revision demo
"$BIN/mesh-certs" init --dir "$WORK/ca" --trust-domain cluster.local >/dev/null

# Pods (where proxies listen) and apps (where mesh-echo listens).
declare -A POD=([frontend]=127.0.10.1 [podinfo-primary]=127.0.11.1 [podinfo-canary]=127.0.12.1)
declare -A APP=([frontend]=127.0.20.1 [podinfo-primary]=127.0.21.1 [podinfo-canary]=127.0.22.1)
declare -A SA=([frontend]=frontend [podinfo-primary]=podinfo [podinfo-canary]=podinfo)
PODINFO_ID=podinfo.podinfo.serviceaccount.identity.linkerd.cluster.local
RUNTIME_ID=mesh-runtime.mesh-system.serviceaccount.identity.linkerd.cluster.local

ep() { echo "{\"addr\": \"${POD[$1]}:9898\", \"identity\": \"$PODINFO_ID\"}"; }
cat >"$WORK/endpoints.json" <<JSON
{"services": [
  {"namespace": "podinfo", "name": "podinfo", "ports": [{"port": 9898, "endpoints": [$(ep podinfo-primary), $(ep podinfo-canary)]}]},
  {"namespace": "podinfo", "name": "podinfo-primary", "ports": [{"port": 9898, "endpoints": [$(ep podinfo-primary)]}]},
  {"namespace": "podinfo", "name": "podinfo-canary", "ports": [{"port": 9898, "endpoints": [$(ep podinfo-canary)]}]}
]}
JSON
cat >"$WORK/tokens.json" <<JSON
{"tokens": [
  {"token": "demo-frontend", "namespace": "podinfo", "serviceAccount": "frontend"},
  {"token": "demo-podinfo", "namespace": "podinfo", "serviceAccount": "podinfo"}
]}
JSON

say "starting mesh-runtime (file mode over dist/)"
"$BIN/mesh-runtime" --dir "$WORK/dist" --trust-key "$WORK/keys/meshc.pub" --ca-dir "$WORK/ca" \
    --endpoints "$WORK/endpoints.json" --tokens "$WORK/tokens.json" \
    --listen 127.0.0.1:18443 --admin 127.0.0.1:19990 --identity "$RUNTIME_ID" 2>"$WORK/runtime.log" &
PIDS+=($!)

wait_ok() {
    for _ in $(seq 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done
    echo "no answer from $1; logs in $WORK" >&2; exit 1
}
wait_ok http://127.0.0.1:19990/ready

for w in frontend podinfo-primary podinfo-canary; do
    say "starting $w: mesh-echo on ${APP[$w]}, mesh-proxy on ${POD[$w]}"
    "$BIN/mesh-echo" --name "$w" --listen "${APP[$w]}:9898" >"$WORK/$w-app.log" &
    PIDS+=($!)
    mkdir -p "$WORK/id-$w"
    cp "$WORK/ca/ca.crt" "$WORK/id-$w/ca.crt"
    echo "demo-${SA[$w]}" >"$WORK/token-$w"
    "$BIN/mesh-proxy" run --workload "Deployment/podinfo/$w" --trust-key "$WORK/keys/meshc.pub" \
        --runtime https://127.0.0.1:18443 --runtime-identity "$RUNTIME_ID" \
        --token-file "$WORK/token-$w" --service-account "${SA[$w]}" --identity-dir "$WORK/id-$w" \
        --inbound "${POD[$w]}:9898=${APP[$w]}:9898" --outbound "${APP[$w]}:4140" \
        --pod-ip "${POD[$w]}" --admin "${APP[$w]}:4191" 2>"$WORK/$w-proxy.log" &
    PIDS+=($!)
    wait_ok "http://${APP[$w]}:4191/ready"
done

failures=0
# show WHAT EXPECTED ACTUAL
show() {
    local mark=ok
    [[ $2 == "$3" ]] || { mark=UNEXPECTED; failures=$((failures + 1)); }
    printf '  %-62s expected %-16s got %-16s %s\n' "$1" "$2" "$3" "$mark"
}
# via_frontend PATH [curl flags...]: the status the frontend app gets from its proxy.
via_frontend() {
    local path=$1
    shift
    curl -s -o /dev/null -w '%{http_code}' -H 'Host: podinfo.podinfo.svc.cluster.local:9898' \
        "$@" "http://${APP[frontend]}:4140$path"
}
# predicted REACH-ARGS: the status `meshc reach` predicts (200 when the app answers).
predicted() {
    "$BIN/meshc" reach "$EXAMPLE" "$@" --format json | python3 -c \
        'import json,sys; r=json.load(sys.stdin); v=(r.get("verdicts") or [r])[0]; print(v.get("status") or 200)'
}

[[ $CHECK == --serve ]] && { say "serving; Ctrl-C stops"; wait; }
say "requests"
show "frontend → podinfo GET /api/echo (90/10 split)" 200 "$(via_frontend /api/echo)"
canary=$(curl -s -H 'Host: podinfo.podinfo.svc.cluster.local:9898' -H 'x-canary: always' \
    "http://${APP[frontend]}:4140/anything" | cut -d' ' -f1)
show "frontend → podinfo x-canary: always answered by" podinfo-canary "$canary"
show "frontend → podinfo GET /other (no route: the client proxy)" 404 "$(via_frontend /other)"
show "frontend → podinfo POST /api/echo (rule matches GET only)" 404 "$(via_frontend /api/echo -X POST)"
unmeshed=$(curl -s -o /dev/null -w '%{http_code}' --interface 127.0.30.1 "http://${POD[podinfo-primary]}:9898/api/echo")
show "unmeshed client → podinfo-primary:9898 (meshc reach: $(predicted --from unmeshed --to deploy/podinfo/podinfo-primary:9898 --path /api/echo))" \
    "$(predicted --from unmeshed --to deploy/podinfo/podinfo-primary:9898 --path /api/echo)" "$unmeshed"

split=$(for _ in $(seq 200); do
    curl -s -H 'Host: podinfo.podinfo.svc.cluster.local:9898' "http://${APP[frontend]}:4140/api/echo" | cut -d' ' -f1
done | sort | uniq -c | tr '\n' ' ')
echo "  200 requests through the frontend's proxy: $split"

if [[ $CHECK == --check ]]; then
    ((failures == 0)) || { echo "$failures request(s) not as expected; logs in $WORK" >&2; exit 1; }
    exit 0
fi
say "running: try the curl commands above; metrics on http://${APP[frontend]}:4191/metrics; Ctrl-C stops"
wait
