#!/usr/bin/env bash
# `meshc check` on the 10,000-workload apps repository, without and with the
# Linkerd 2.17+ kinds (MESHC_BENCH_NEW_KINDS=1: an EgressNetwork, a TLSRoute
# and an HTTPLocalRateLimitPolicy in every other namespace; otherwise the
# same bytes, compiler/benches/synth/new_kinds.rs). Issue 17's budget: with
# them, at most 1.1x the time without.
#
# Interleaved: each round runs hyperfine once on each repository in turn
# (plain, then with the kinds; the order alternates every round), so the
# shared machine's noise hits both alike; prints every round and the medians.
#
# Environment: MESHC_BENCH_RUNS (rounds, 10), MESHC_BENCH_WORKLOADS (10000),
# MESHC_BENCH_DIR (generate there and keep it), CARGO_TARGET_DIR (target).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rounds="${MESHC_BENCH_RUNS:-10}"
bench_name=meshc-bench-new-kinds
# shellcheck source=scripts/bench-setup.sh
. "$root/scripts/bench-setup.sh"
command -v hyperfine >/dev/null || { echo "needs hyperfine" >&2; exit 2; }

MESHC_BENCH_NEW_KINDS=0 "$bench_bin" --generate "$dir/plain" >&2
MESHC_BENCH_NEW_KINDS=1 "$bench_bin" --generate "$dir/kinds" >&2

one() { # prints the wall time of one `meshc check` of $1, in seconds
    hyperfine --runs 1 --style none --export-json "$dir/one.json" \
        "$meshc check $1 --format json > /dev/null || true" >/dev/null 2>&1
    python3 -c 'import json,sys; print("%.3f" % json.load(open(sys.argv[1]))["results"][0]["mean"])' "$dir/one.json"
}

# One warm-up each (page cache), not counted.
one "$dir/plain" >/dev/null
one "$dir/kinds" >/dev/null
plain=()
kinds=()
for ((i = 1; i <= rounds; i++)); do
    if ((i % 2)); then
        p="$(one "$dir/plain")"; k="$(one "$dir/kinds")"
    else
        k="$(one "$dir/kinds")"; p="$(one "$dir/plain")"
    fi
    plain+=("$p"); kinds+=("$k")
    echo "round $i: plain ${p}s, with the new kinds ${k}s"
done
python3 - "${plain[*]}" "${kinds[*]}" <<'PY'
import statistics, sys
p = [float(x) for x in sys.argv[1].split()]
k = [float(x) for x in sys.argv[2].split()]
mp, mk = statistics.median(p), statistics.median(k)
ratios = sorted(b / a for a, b in zip(p, k))
print(f"median: plain {mp:.3f}s, with the new kinds {mk:.3f}s, ratio of medians {mk / mp:.3f}; "
      f"per-round ratios {ratios[0]:.3f}..{ratios[-1]:.3f} (median {statistics.median(ratios):.3f}); budget 1.1")
PY
