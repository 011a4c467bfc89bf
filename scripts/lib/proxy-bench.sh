# proxy-bench.sh — what scripts/bench-proxy.sh and scripts/profile-proxy.sh
# share: the loopback layout, the app, the baselines (HAProxy, nginx), the
# policy repo, keys and certificates, and the two mesh-proxies. Sourced, not
# run; the caller sets `set -euo pipefail` and BIN_DIR.
#
# The server "pod" is 127.0.0.2 and the client "pod" 127.0.0.3, so the meshed
# path is authorized by the client's mTLS identity rather than by the
# built-in localhost authorization (127.0.0.1 only).

LOAD_CPU=${LOAD_CPU:-0}
APP_CPU=${APP_CPU:-1}
APP_ADDR=127.0.0.1:18080
HAPROXY_ADDR=127.0.0.1:18081
NGINX_ADDR=127.0.0.1:18082
SERVER_INBOUND=127.0.0.2:8080
SERVER_ADMIN=127.0.0.2:4191
CLIENT_POD_IP=127.0.0.3
CLIENT_OUTBOUND=127.0.0.3:4140
CLIENT_ADMIN=127.0.0.3:4191
SERVICE_HOST=echo.bench.svc.cluster.local:8080
# Where `meshc` and `mesh-certs` are: they only prepare configs and
# certificates, so a debug build does (TOOLS_DIR=target/debug).
TOOLS_DIR=${TOOLS_DIR:-$BIN_DIR}
# Seconds a process may take to answer after start (valgrind needs more).
READY_WAIT=${READY_WAIT:-10}

WORK=$(mktemp -d -t "${BENCH_NAME:-bench-proxy}.XXXXXX")
PIDS=()

log() { echo "${BENCH_NAME:-bench-proxy}: $*" >&2; }
die() {
    log "$*"
    exit 1
}

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -n ${KEEP_TMP:-} ]]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# wait_http URL: until something answers on URL (any status).
wait_http() {
    for _ in $(seq $((READY_WAIT * 10))); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    die "nothing answers on $1"
}

# wait_ready URL: until a proxy's /ready answers 200: with shared Service
# policies its config loads only once the set it names is read too.
wait_ready() {
    for _ in $(seq $((READY_WAIT * 10))); do
        curl -sf -o /dev/null "$1" && return 0
        sleep 0.1
    done
    die "$1 never answered 200"
}

# wait_line FILE PATTERN: until a process's log says it is ready.
wait_line() {
    for _ in $(seq $((READY_WAIT * 10))); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    die "$1 never printed '$2'"
}

start_app() {
    taskset -c "$APP_CPU" "$BIN_DIR/mesh-echo" --listen $APP_ADDR --name echo >"$WORK/app.log" 2>&1 &
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
    taskset -c "$APP_CPU" haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
    PIDS+=($!)
    HAPROXY_PID=$!
    wait_http "http://$HAPROXY_ADDR/"
}

# nginx as Debian packages it, one worker in the foreground (`daemon off`,
# no master: the worker is the process measured), keep-alive connections to
# the app, and request and response bodies streamed rather than buffered,
# as HAProxy and mesh-proxy do. Streaming moves a body through one buffer
# per direction, and nginx's defaults (8-16 KiB for the request, 4 KiB for
# the response) cost some 400 system calls per echoed MiB: at 200 rps of
# 1 MiB bodies that alone saturated the core (p50 660 ms). 64 KiB each, as
# mesh-proxy reads, with no temp files: a body never waits on the disk.
start_nginx() {
    mkdir -p "$WORK/nginx"
    cat >"$WORK/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    keepalive_requests 1000000;
    upstream echo {
        server $APP_ADDR;
        keepalive 256;
    }
    server {
        listen $NGINX_ADDR;
        client_max_body_size 16m;
        client_body_buffer_size 64k;
        location / {
            proxy_pass http://echo;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_buffer_size 64k;
            # Unused while unbuffered, but nginx checks its busy-buffers
            # size (2 × 64k) against them.
            proxy_buffers 4 64k;
            proxy_max_temp_file_size 0;
        }
    }
}
EOF
    nginx -t -q -c "$WORK/nginx.conf" -p "$WORK/nginx" 2>"$WORK/nginx-check.log" ||
        die "nginx rejected $WORK/nginx.conf: $(cat "$WORK/nginx-check.log")"
    taskset -c "$APP_CPU" nginx -c "$WORK/nginx.conf" -p "$WORK/nginx" >"$WORK/nginx.log" 2>&1 &
    PIDS+=($!)
    NGINX_PID=$!
    wait_http "http://$NGINX_ADDR/"
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
    if ! "$TOOLS_DIR/mesh-certs" --help >/dev/null 2>&1; then
        log "no mesh-certs in $TOOLS_DIR: skipping the proxy and meshed targets"
        return 1
    fi
    local meshc="$TOOLS_DIR/meshc"
    "$meshc" keygen --out "$WORK/keys" >&2
    write_policy "$WORK/repo"
    "$meshc" build "$WORK/repo" --key "$WORK/keys/meshc.key" --out "$WORK/dist" --revision bench >&2
    # A build writes servicepolicies/<namespace>/*.yaml only when the repo
    # shares Service policies; the proxies then get the directory, as users
    # run them (proxy/README.md, "Run it"): a config that names a set is
    # enforced only with exactly that set.
    SERVICE_POLICY_ARGS=()
    if compgen -G "$WORK/dist/servicepolicies/*/*.yaml" >/dev/null; then
        SERVICE_POLICY_ARGS=(--service-policies "$WORK/dist/servicepolicies")
    fi
    "$TOOLS_DIR/mesh-certs" init --dir "$WORK/ca" --trust-domain cluster.local >&2
    for sa in echo client; do
        "$TOOLS_DIR/mesh-certs" issue --ca-dir "$WORK/ca" --sa $sa --namespace bench --out "$WORK/id-$sa" >&2
    done
    cat >"$WORK/discovery.json" <<EOF
{"services":[{"namespace":"bench","name":"echo","ports":[{"port":8080,"endpoints":[
  {"addr":"$SERVER_INBOUND","identity":"echo.bench.serviceaccount.identity.linkerd.cluster.local"}]}]}]}
EOF
}

# Extra `mesh-proxy run` flags for both proxies.
PROXY_ARGS=(${PROXY_ARGS_EXTRA:-})

# launch_proxy NAME COMMAND...: runs one proxy in this (background) subshell.
# `exec` keeps its PID the one `$!` names. The profile script redefines it
# to run the proxy under valgrind.
launch_proxy() {
    shift
    exec taskset -c "$APP_CPU" "$@"
}

start_server_proxy() {
    launch_proxy server "$BIN_DIR/mesh-proxy" run --workload Deployment/bench/echo \
        --config "$WORK/dist/configs/bench/deployment-echo.yaml" --trust-key "$WORK/keys/meshc.pub" \
        --identity-dir "$WORK/id-echo" --inbound "$SERVER_INBOUND=$APP_ADDR" --admin $SERVER_ADMIN \
        "${SERVICE_POLICY_ARGS[@]}" "${PROXY_ARGS[@]}" >"$WORK/server-proxy.log" 2>&1 &
    PIDS+=($!)
    SERVER_PROXY_PID=$!
    wait_ready "http://$SERVER_ADMIN/ready"
}

start_client_proxy() {
    launch_proxy client "$BIN_DIR/mesh-proxy" run --workload Deployment/bench/client \
        --config "$WORK/dist/configs/bench/deployment-client.yaml" --trust-key "$WORK/keys/meshc.pub" \
        --identity-dir "$WORK/id-client" --discovery "$WORK/discovery.json" \
        --outbound $CLIENT_OUTBOUND --pod-ip $CLIENT_POD_IP --admin $CLIENT_ADMIN \
        "${SERVICE_POLICY_ARGS[@]}" "${PROXY_ARGS[@]}" >"$WORK/client-proxy.log" 2>&1 &
    PIDS+=($!)
    CLIENT_PROXY_PID=$!
    wait_ready "http://$CLIENT_ADMIN/ready"
}

# The URL, extra oha arguments and measured processes of a target:
# sets TARGET_URL, TARGET_ARGS (array) and TARGET_PIDS (array; the first
# is the server-side process).
target_of() {
    TARGET_ARGS=()
    TARGET_PIDS=()
    case $1 in
        direct) TARGET_URL="http://$APP_ADDR/bench" ;;
        haproxy) TARGET_URL="http://$HAPROXY_ADDR/bench"; TARGET_PIDS=("$HAPROXY_PID") ;;
        nginx) TARGET_URL="http://$NGINX_ADDR/bench"; TARGET_PIDS=("$NGINX_PID") ;;
        proxy) TARGET_URL="http://$SERVER_INBOUND/bench"; TARGET_PIDS=("$SERVER_PROXY_PID") ;;
        meshed)
            TARGET_URL="http://$CLIENT_OUTBOUND/bench"
            TARGET_ARGS=(-H "Host: $SERVICE_HOST")
            TARGET_PIDS=("$SERVER_PROXY_PID" "$CLIENT_PROXY_PID")
            ;;
        *) die "unknown target $1" ;;
    esac
}

# start_targets TARGET...: starts the app and what the targets need; sets
# STARTED (array) to the targets that could be started.
start_targets() {
    start_app
    STARTED=()
    local t wants_mesh=""
    for t in "$@"; do
        case $t in
            direct) STARTED+=(direct) ;;
            haproxy) start_haproxy; STARTED+=(haproxy) ;;
            nginx) start_nginx; STARTED+=(nginx) ;;
            proxy | meshed) wants_mesh=1 ;;
            *) die "unknown target $t" ;;
        esac
    done
    if [[ -n $wants_mesh ]] && prepare_mesh; then
        start_server_proxy
        [[ " $* " == *" proxy "* ]] && STARTED+=(proxy)
        if [[ " $* " == *" meshed "* ]]; then
            start_client_proxy
            STARTED+=(meshed)
        fi
    fi
    return 0
}
