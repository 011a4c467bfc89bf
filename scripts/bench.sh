#!/usr/bin/env bash
# End-to-end scale benchmark of the release `meshc check` binary.
#
# Generates the synthetic repository of compiler/benches/check_scale.rs
# (default 10,000 workloads, ~100,000 objects) into a temporary directory,
# then times with hyperfine, as processes:
#   parse-only   discover + read + parse_documents of every file, one thread
#   check        target/release/meshc check DIR --format json
#   matrix       target/release/meshc matrix DIR --format json (to /dev/null)
#   diff         target/release/meshc diff HEAD~1 HEAD in DIR, made a git
#                repository whose last commit removes one AuthorizationPolicy
#   invariants   meshc check DIR --tests FILE, FILE holding 50 invariants over
#                `edges` (check_scale --invariants)
#   build        meshc build DIR --key K --out OUT (signed configs) into an
#                empty OUT and again over unchanged output, and the sizes of
#                the ProxyConfigs it wrote
# and prints check/parse-only. Budget: check < 5 s, ratio <= 2.
#
# For the in-process figures with a per-stage breakdown, run instead:
#   cargo bench -p meshc --bench check_scale
#
# Environment: MESHC_BENCH_WORKLOADS (10000), MESHC_BENCH_NAMESPACES
# (workloads / 100), MESHC_BENCH_RUNS (5), MESHC_BENCH_DIR (generate there and
# keep it), CARGO_TARGET_DIR (target). Needs hyperfine; installs the Debian
# package when it is missing and apt-get is usable, else falls back to a loop.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
runs="${MESHC_BENCH_RUNS:-5}"
bench_name=meshc-bench
# shellcheck source=scripts/bench-setup.sh
. "$root/scripts/bench-setup.sh"

echo "== generating into $dir" >&2
"$bench_bin" --generate "$dir"

if ! command -v hyperfine >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "== installing hyperfine (apt-get)" >&2
    { apt-get update -qq && apt-get install -y -qq hyperfine; } >&2 || true
fi

parse_cmd="MESHC_BENCH_RUNS=1 $bench_bin --parse-only $dir"
check_cmd="$meshc check $dir --format json"
matrix_cmd="$meshc matrix $dir --format json"
# meshc diff between two commits that differ in one file (one AuthorizationPolicy removed).
echo "== making a git history in $dir" >&2
one="$(find "$dir" -path '*/policy/*.yaml' ! -name 'authentications.yaml' | sort | sed -n 1p)"
(
    cd "$dir"
    git init -q && git add -A && git -c user.name=bench -c user.email=bench@example.com commit -qm base
    python3 - "$one" <<'PY'
import sys
path = sys.argv[1]
docs = open(path).read().split("\n---\n")
docs = [d for i, d in enumerate(docs) if i != next(j for j, d in enumerate(docs) if "kind: AuthorizationPolicy" in d)]
open(path, "w").write("\n---\n".join(docs))
PY
    git -c user.name=bench -c user.email=bench@example.com commit -qam "remove one AuthorizationPolicy"
) >&2
diff_cmd="cd $dir && $meshc diff HEAD~1 HEAD"
# 50 invariants over `edges` (outside the repository, so plain check does not find them).
invariants="$dir.scale.meshtest.yaml"
"$bench_bin" --invariants "$invariants" >&2
invariants_cmd="$meshc check $dir --tests $invariants --format json"

# meshc build with a fresh key into a directory outside the repository
# (--allow-errors: the generator's deliberate errors would stop it).
work="$(mktemp -d -t meshc-bench-build-XXXXXX)"
"$meshc" keygen --out "$work" >&2
build_cmd="$meshc build $dir --key $work/meshc.key --out $work/dist --allow-errors"
# Fresh: into an empty directory (removing the last one is timed too).
# Again: over the previous output, which is unchanged (nothing is rewritten).
fresh_cmd="rm -rf $work/dist && $build_cmd"

names=(parse-only check matrix diff invariants build-fresh build-again)
cmds=("$parse_cmd" "$check_cmd" "$matrix_cmd" "$diff_cmd" "$invariants_cmd" "$fresh_cmd" "$build_cmd")
echo "== timing ($runs runs each)" >&2
# On a shared host the 2 cores are often not 2 cores' worth of CPU: say how many we got.
cores_before="$("$bench_bin" --cores)"
medians=()
if command -v hyperfine >/dev/null 2>&1; then
    json="$(mktemp -t meshc-bench-XXXXXX.json)"
    args=()
    for k in "${!names[@]}"; do args+=(--command-name "${names[$k]}" "${cmds[$k]}"); done
    # meshc exits 1 on the generator's deliberate error findings: -i keeps timing.
    hyperfine --warmup 1 --runs "$runs" -i --export-json "$json" "${args[@]}" >&2
    mapfile -t medians < <(grep -o '"median": *[0-9.e+-]*' "$json" | sed 's/.*: *//')
    rm -f "$json"
else
    echo "hyperfine not available: timing with a shell loop" >&2
    median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
    now() { date +%s.%N; }
    times=()
    for _ in $(seq "$runs"); do
        # Interleaved, one run of each command per round, as hyperfine cannot do.
        for k in "${!names[@]}"; do
            t0="$(now)"; sh -c "${cmds[$k]}" >/dev/null 2>&1 || true; t1="$(now)"
            times[$k]="${times[$k]:-} $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
        done
    done
    for k in "${!names[@]}"; do medians[$k]="$(echo ${times[$k]} | tr ' ' '\n' | median)"; done
fi
[ "${#medians[@]}" = "${#names[@]}" ] || { echo "expected ${#names[@]} medians, got ${#medians[@]}" >&2; exit 2; }
parse_s="${medians[0]}"; check_s="${medians[1]}"; matrix_s="${medians[2]}"
diff_s="${medians[3]}"; invariants_s="${medians[4]}"; build_s="${medians[5]}"; again_s="${medians[6]}"
rm -f "$invariants"

# Config sizes: the canonical payload (what the proxy parses) and the whole
# ProxyConfig object file (payload in base64, signature, metadata).
sh -c "$build_cmd" >/dev/null 2>&1
"$meshc" verify-bundle "$work/dist" --pubkey "$work/meshc.pub" >&2
sizes() { sort -n | awk '{ a[NR] = $1 } END { printf "%d configs, median %.1f KiB, largest %.1f KiB", NR, a[int((NR + 1) / 2)] / 1024, a[NR] / 1024 }'; }
object_sizes="$(find "$work/dist/configs" -name '*.yaml' -exec stat -c %s {} + | sizes)"
payload_sizes="$(find "$work/dist/configs" -name '*.yaml' -exec python3 -c '
import json, sys, base64
for p in sys.argv[1:]:
    doc = json.loads(open(p).read().split("---", 1)[-1])
    print(len(base64.b64decode(doc["spec"]["envelope"]["payload"])))
' {} + | sizes)"
rm -rf "$work"

cores_after="$("$bench_bin" --cores)"
summary="$("$meshc" check "$dir" --format json 2>/dev/null || true)"
findings="$(printf '%s' "$summary" | grep -o '"code": *"[a-z-]*"' | sort | uniq -c | sort -rn || true)"
echo
echo "findings by code (meshc check --format json):"
echo "${findings:-  none}"
echo
echo "before timing: $cores_before"
echo "after timing:  $cores_after"
echo "ProxyConfig objects:  $object_sizes"
echo "canonical payloads:   $payload_sizes"
awk -v p="$parse_s" -v c="$check_s" -v m="$matrix_s" -v d="$diff_s" -v v="$invariants_s" -v b="$build_s" -v a="$again_s" 'BEGIN {
    r = c / p
    printf "\nparse-only (1 thread, process): median %.3f s\n", p
    printf "meshc check (process):          median %.3f s  (budget < 5 s: %s)\n", c, (c < 5 ? "ok" : "OVER")
    printf "ratio check/parse-only:         %.2f          (budget <= 2: %s)\n", r, (r <= 2 ? "ok" : "OVER")
    printf "meshc matrix --format json:     median %.3f s  (budget < 10 s: %s; matrix/check %.2f)\n", m, (m < 10 ? "ok" : "OVER"), m / c
    printf "meshc diff HEAD~1 HEAD (1 file): median %.3f s  (budget < 2x check: %s; diff/check %.2f)\n", d, (d < 2 * c ? "ok" : "OVER"), d / c
    printf "meshc check + 50 invariants:    median %.3f s  (budget < 2x check: %s; invariants/check %.2f)\n", v, (v < 2 * c ? "ok" : "OVER"), v / c
    printf "meshc build --out, fresh dir:   median %.3f s  (budget < 2x check: %s; build/check %.2f)\n", b, (b < 2 * c ? "ok" : "OVER"), b / c
    printf "meshc build --out, unchanged:   median %.3f s  (build/check %.2f)\n", a, a / c
    printf "RESULT parse_only_s=%.4f check_s=%.4f ratio=%.3f matrix_s=%.4f diff_s=%.4f invariants_s=%.4f build_s=%.4f build_again_s=%.4f\n", p, c, r, m, d, v, b, a
}'
