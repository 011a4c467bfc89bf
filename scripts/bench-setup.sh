# Sourced by the meshc benchmark scripts (bench.sh, bench-flux.sh): builds the
# release meshc and the check_scale generator, and makes the work directory.
#
# In: root (the repository), bench_name (the temp directory's prefix),
# MESHC_BENCH_BIN (optional: a check_scale executable already built, e.g. by
# `cargo test -p meshc --bench check_scale --no-run`; it only generates the
# repositories, so its profile does not matter unless parse-only is timed).
# Out: target, meshc (the release binary), bench_bin (check_scale, which
# `--generate DIR` writes the synthetic repository), dir (MESHC_BENCH_DIR,
# emptied and kept, or a temporary directory removed on exit).

target="${CARGO_TARGET_DIR:-$root/target}"

echo "== building (release)" >&2
cargo build --release -p meshc --bin meshc >&2
bench_bin="${MESHC_BENCH_BIN:-}"
[ -n "$bench_bin" ] || bench_bin="$(cargo bench -p meshc --bench check_scale --no-run 2>&1 \
    | tee /dev/stderr \
    | sed -n 's/^ *Executable benches\/check_scale\.rs (\(.*\))$/\1/p' | tail -n 1)"
[ -n "$bench_bin" ] || { echo "cannot find the check_scale bench executable" >&2; exit 2; }
case "$bench_bin" in /*) ;; *) bench_bin="$root/$bench_bin" ;; esac
meshc="$target/release/meshc"

if [ -n "${MESHC_BENCH_DIR:-}" ]; then
    dir="$MESHC_BENCH_DIR"
    rm -rf "$dir"
    mkdir -p "$dir"
else
    dir="$(mktemp -d -t "$bench_name-XXXXXX")"
    # shellcheck disable=SC2064 # expand now: the path is known
    trap "rm -rf '$dir'" EXIT
fi
