# proxy-bench.sh — what scripts/bench-proxy.sh and scripts/profile-proxy.sh
# share: the loopback layout, the app, the baselines (HAProxy, nginx), the
# policy repo, keys and certificates, and the two mesh-proxies. Sourced, not
# run; the caller sets `set -euo pipefail` and REPO.
#
# The server "pod" is 127.0.0.2 and the client "pod" 127.0.0.3, so the meshed
# path is authorized by the client's mTLS identity rather than by the
# built-in localhost authorization (127.0.0.1 only).

LOAD_CPU=${LOAD_CPU:-0}
APP_CPU=${APP_CPU:-1}
APP_ADDR=127.0.0.1:18080
HAPROXY_ADDR=127.0.0.1:18081
NGINX_ADDR=127.0.0.1:18082
# The HAProxy pair of `haproxy-meshed`, on the same pod addresses as the
# mesh-proxies: the client's plaintext listener and the server's mTLS one.
HAPROXY_CLIENT_ADDR=127.0.0.3:18084
HAPROXY_SERVER_ADDR=127.0.0.2:18443
SERVER_INBOUND=127.0.0.2:8080
SERVER_ADMIN=127.0.0.2:4191
CLIENT_POD_IP=127.0.0.3
CLIENT_OUTBOUND=127.0.0.3:4140
CLIENT_ADMIN=127.0.0.3:4191
SERVICE_HOST=echo.bench.svc.cluster.local:8080
# Where mesh-proxy and mesh-echo are: by default built as shipped, with the
# proxy's cargo profile (Cargo.toml [profile.proxy]). Where `meshc` and
# `mesh-certs` are: they only prepare configs and certificates, so any
# build does (TOOLS_DIR=target/debug); by default the release one, or
# BIN_DIR when that is given.
CARGO_OUT=${CARGO_TARGET_DIR:-$REPO/target}
if [[ -n ${BIN_DIR:-} ]]; then
    TOOLS_DIR=${TOOLS_DIR:-$BIN_DIR}
else
    BIN_DIR=$CARGO_OUT/proxy
    TOOLS_DIR=${TOOLS_DIR:-$CARGO_OUT/release}
fi

# build_binaries: what the defaults above name, unless SKIP_BUILD is set.
build_binaries() {
    if [[ -n ${SKIP_BUILD:-} ]]; then return; fi
    log "building mesh-proxy and mesh-echo (--profile proxy), mesh-certs and meshc (--release)"
    (cd "$REPO" && cargo build --profile proxy --locked -p mesh-proxy -p mesh-devtools --bins >&2)
    (cd "$REPO" && cargo build --release --locked -p mesh-devtools --bins -p meshc >&2)
}
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

# wait_http URL [CURL_FLAG]: until something answers on URL (any status;
# with -f, a 2xx).
wait_http() {
    for _ in $(seq $((READY_WAIT * 10))); do
        curl -s ${2:+"$2"} -o /dev/null "$1" && return 0
        sleep 0.1
    done
    die "no answer${2:+ ($2)} on $1"
}

# wait_ready URL: until a proxy's /ready answers 200: with shared Service
# policies its config loads only once the set it names is read too.
wait_ready() { wait_http "$1" -f; }

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

# haproxy_common [GLOBAL_LINE...]: the global and defaults sections every
# HAProxy here shares (one thread, HTTP mode, keep-alive both sides).
haproxy_common() {
    printf 'global\n    nbthread 1\n    maxconn 4096\n'
    (($# == 0)) || printf '    %s\n' "$@"
    cat <<EOF
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 30s
    timeout server 30s
EOF
}

# run_haproxy NAME: runs HAProxy on $WORK/NAME.cfg in this (background)
# subshell, pinned like every proxy. `exec` keeps its PID the one `$!`
# names. The profile script redefines it to run HAProxy under valgrind.
run_haproxy() {
    exec taskset -c "$APP_CPU" haproxy -db -f "$WORK/$1.cfg"
}

# launch_haproxy NAME: checks and starts $WORK/NAME.cfg; sets LAUNCHED_PID.
launch_haproxy() {
    haproxy -c -q -f "$WORK/$1.cfg" || die "haproxy rejected $WORK/$1.cfg"
    run_haproxy "$1" >"$WORK/$1.log" 2>&1 &
    PIDS+=($!)
    LAUNCHED_PID=$!
}

start_haproxy() {
    {
        haproxy_common
        printf 'frontend bench\n    bind %s\n    default_backend echo\n' "$HAPROXY_ADDR"
        printf 'backend echo\n    server app %s\n' "$APP_ADDR"
    } >"$WORK/haproxy.cfg"
    launch_haproxy haproxy
    HAPROXY_PID=$LAUNCHED_PID
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

# Keys, signed configs, certificates and discovery for both proxies (the
# certificates serve `haproxy-meshed` too). Returns 1 (those targets
# skipped) when `mesh-certs` is not there.
prepare_mesh() {
    if ! "$TOOLS_DIR/mesh-certs" --help >/dev/null 2>&1; then
        log "no mesh-certs in $TOOLS_DIR: skipping the proxy, meshed and haproxy-meshed targets"
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

# `haproxy-meshed`: the meshed path with two HAProxies in the mesh-proxies'
# places, so that what two hops and mTLS cost on this machine is measured
# apart from what mesh-proxy's code costs. The same certificates and
# identities as the mesh (mesh-certs: ECDSA P-256), TLS 1.3 only,
# AES-128-GCM first as the mesh's provider orders it, a certificate
# required and verified on both sides, the client checking the server's
# identity (SNI and name) and the server allowing only the client's
# identity, as the bench policy does. No resumption, as in the mesh (no
# tickets, no session cache; a pooled connection handshakes once anyway).
ECHO_ID=echo.bench.serviceaccount.identity.linkerd.cluster.local
CLIENT_ID=client.bench.serviceaccount.identity.linkerd.cluster.local
MESH_SUITES=TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256

start_haproxy_meshed() {
    local sa
    # HAProxy takes the chain and its key in one file.
    for sa in echo client; do cat "$WORK/id-$sa/tls.crt" "$WORK/id-$sa/tls.key" >"$WORK/haproxy-$sa.pem"; done
    {
        haproxy_common "ssl-default-bind-ciphersuites $MESH_SUITES" \
            "ssl-default-bind-options ssl-min-ver TLSv1.3 no-tls-tickets" "tune.ssl.cachesize 0"
        cat <<EOF
frontend mesh-in
    bind $HAPROXY_SERVER_ADDR ssl crt $WORK/haproxy-echo.pem ca-file $WORK/id-echo/ca.crt verify required
    http-request deny unless { ssl_c_s_dn(CN) -m str $CLIENT_ID }
    default_backend echo
backend echo
    server app $APP_ADDR
EOF
    } >"$WORK/haproxy-server.cfg"
    {
        haproxy_common "ssl-default-server-ciphersuites $MESH_SUITES" \
            "ssl-default-server-options ssl-min-ver TLSv1.3 no-tls-tickets"
        cat <<EOF
frontend mesh-out
    bind $HAPROXY_CLIENT_ADDR
    default_backend echo
backend echo
    server echo $HAPROXY_SERVER_ADDR ssl crt $WORK/haproxy-client.pem ca-file $WORK/id-client/ca.crt verify required sni str($ECHO_ID) verifyhost $ECHO_ID no-ssl-reuse
EOF
    } >"$WORK/haproxy-client.cfg"
    launch_haproxy haproxy-server
    HAPROXY_SERVER_PID=$LAUNCHED_PID
    launch_haproxy haproxy-client
    HAPROXY_CLIENT_PID=$LAUNCHED_PID
    wait_http "http://$HAPROXY_CLIENT_ADDR/"
    check_haproxy_mtls
}

# tls_get SA: a GET to the server HAProxy over TLS with SA's certificate
# (none for SA=-), verifying the server as the client HAProxy does;
# prints openssl's session summary and the status line.
tls_get() {
    local cert=()
    [[ $1 == - ]] || cert=(-cert "$WORK/id-$1/tls.crt" -cert_chain "$WORK/id-$1/tls.crt" -key "$WORK/id-$1/tls.key")
    printf 'GET /bench HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n\r\n' |
        timeout 5 openssl s_client -brief -ign_eof -connect "$HAPROXY_SERVER_ADDR" -servername $ECHO_ID \
            -verify_hostname $ECHO_ID -verify_return_error -CAfile "$WORK/id-client/ca.crt" "${cert[@]}" 2>&1 |
        grep -E '^(Protocol version|Ciphersuite|Peer certificate|Verification|HTTP/1)|alert' || true
}

# The baseline is what it claims only if the server HAProxy speaks TLS 1.3
# with AES-128-GCM, requires a certificate, and answers the client's
# identity only.
check_haproxy_mtls() {
    local ok none other
    ok=$(tls_get client)
    none=$(tls_get -)
    other=$(tls_get echo)
    log "haproxy-meshed, with the client's certificate: ${ok//$'\n'/; }"
    [[ $ok == *"Protocol version: TLSv1.3"* && $ok == *"Ciphersuite: TLS_AES_128_GCM_SHA256"* &&
        $ok == *" 200 "* ]] || die "haproxy-meshed: no 200 over TLS 1.3 / AES-128-GCM with the client's identity"
    [[ $none == *"alert certificate required"* && $none != *HTTP/1* ]] ||
        die "haproxy-meshed: the server HAProxy answers a client without certificate"
    [[ $other == *"HTTP/1.1 403 "* ]] || die "haproxy-meshed: the server HAProxy does not refuse another identity"
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
        haproxy-meshed)
            TARGET_URL="http://$HAPROXY_CLIENT_ADDR/bench"
            TARGET_PIDS=("$HAPROXY_SERVER_PID" "$HAPROXY_CLIENT_PID")
            ;;
        meshed)
            TARGET_URL="http://$CLIENT_OUTBOUND/bench"
            TARGET_ARGS=(-H "Host: $SERVICE_HOST")
            TARGET_PIDS=("$SERVER_PROXY_PID" "$CLIENT_PROXY_PID")
            ;;
        *) die "unknown target $1" ;;
    esac
}

# start_targets TARGET...: starts the app and what the targets need; sets
# STARTED (array) to the targets that could be started, in the given order.
start_targets() {
    start_app
    STARTED=()
    local t wants_mesh="" up=" direct "
    for t in "$@"; do
        case $t in
            direct) ;;
            haproxy) start_haproxy; up+="haproxy " ;;
            nginx) start_nginx; up+="nginx " ;;
            proxy | meshed | haproxy-meshed) wants_mesh=1 ;;
            *) die "unknown target $t" ;;
        esac
    done
    if [[ -n $wants_mesh ]] && prepare_mesh; then
        if [[ " $* " == *" proxy "* || " $* " == *" meshed "* ]]; then
            start_server_proxy
            up+="proxy "
        fi
        if [[ " $* " == *" meshed "* ]]; then
            start_client_proxy
            up+="meshed "
        fi
        if [[ " $* " == *" haproxy-meshed "* ]]; then
            start_haproxy_meshed
            up+="haproxy-meshed "
        fi
    fi
    for t in "$@"; do [[ $up != *" $t "* ]] || STARTED+=("$t"); done
}
