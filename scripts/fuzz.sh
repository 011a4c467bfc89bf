#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time each.
#
#   scripts/fuzz.sh                 # every target, FUZZ_SECONDS (default 40) each
#   FUZZ_SECONDS=600 scripts/fuzz.sh load envelope_open
#
# Needs a nightly toolchain (FUZZ_TOOLCHAIN, default nightly) and cargo-fuzz,
# which it installs with `cargo install --locked cargo-fuzz` when missing.
# Seeds are read from fuzz/corpus/TARGET (committed; fuzz/make-seeds.sh
# regenerates them); what fuzzing finds goes to
# $FUZZ_TARGET_DIR/fuzz-corpus/TARGET, never into the committed seeds. A crash
# leaves its input in fuzz/artifacts/TARGET/ and makes the script exit 1:
# turn that input into a regression test.
set -euo pipefail

seconds="${FUZZ_SECONDS:-40}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
root="$(cd "$(dirname "$0")/.." && pwd)"
# The sanitizer build of every dependency (kube and k8s-openapi among them)
# takes a long time on 2 cores, so it lives outside the checkout where a
# machine that keeps it (a developer's, CI's next run) builds only our crates.
target_dir="${FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meshc/fuzz-target}"
mkdir -p "$target_dir"
cd "$root/fuzz"

if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
    echo "fuzz.sh: the $toolchain toolchain is missing; install it with: rustup toolchain install $toolchain" >&2
    exit 2
fi
if ! cargo "+$toolchain" fuzz --version >/dev/null 2>&1; then
    echo "==> cargo-fuzz is missing: installing it (cargo install --locked cargo-fuzz)"
    cargo install --locked cargo-fuzz
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo "+$toolchain" fuzz list)
fi

echo "==> building ${#targets[@]} fuzz targets with $toolchain (first build takes minutes)"
cargo "+$toolchain" fuzz build -O --debug-assertions --target-dir "$target_dir"

failed=()
for target in "${targets[@]}"; do
    work="$target_dir/fuzz-corpus/$target"
    mkdir -p "$work" "corpus/$target"
    echo "==> fuzzing $target for ${seconds}s (seeds: fuzz/corpus/$target, new inputs: $work)"
    if ! cargo "+$toolchain" fuzz run -O --debug-assertions --target-dir "$target_dir" "$target" "$work" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
        echo "!!! $target: crash or error; the input is in fuzz/artifacts/$target/" >&2
        echo "    reproduce: (cd fuzz && cargo +$toolchain fuzz run $target artifacts/$target/<file>)" >&2
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz.sh: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
    exit 1
fi
echo "==> every target ran ${seconds}s without a crash"
