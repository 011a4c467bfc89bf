#!/usr/bin/env bash
# Measures mesh-runtime's figures (runtime/README.md, "Figures"): builds the
# release binary and the bench program, then runs it. Extra arguments go to
# the program, e.g.
#   scripts/bench-runtime.sh --figures certs --modes kube
#   scripts/bench-runtime.sh --workloads 200 --rounds 3 --sizes 0,1000
#   scripts/bench-runtime.sh --figures latency --modes kube,kube-real
# (`--help` lists them all). `kube-real` runs Kubernetes mode against a real
# kube-apiserver (tests/apiserver-harness, built on first use: needs `go` and
# kubectl; docs/development.md gives the first build's time).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet -p mesh-runtime --bin mesh-runtime
cargo build --release --quiet -p mesh-e2e --example bench_runtime
# 1,000 proxies hold a connection each, on both sides of the loopback.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec "$target/release/examples/bench_runtime" --runtime-bin "$target/release/mesh-runtime" "$@"
