#!/usr/bin/env bash
# End-to-end scale benchmark of the release `meshc`, on two generated
# repositories of different shapes (compiler/benches/synth/):
#   apps   100 workloads per namespace, a mix of HTTP, gRPC and database
#          apps (10,000 workloads: ~99,000 objects, ~47 MiB)
#   wide   50 workloads per namespace (200 namespaces), one Server per app
#          with five routes, 24-identity MeshTLSAuthentications
#          (10,000 workloads: ~140,000 objects)
# Each is made a git repository whose last commit removes one
# AuthorizationPolicy. Then, interleaved (one run of every command on both
# repositories per round, so that the shared machine's noise hits all
# alike), each command as a process under /usr/bin/time -v:
#   parse-only   discover + read + parse_documents of every file, one thread
#   check        meshc check DIR --format json
#   diff         meshc diff HEAD~1 HEAD (in DIR)
#   build        meshc build DIR --key K --out OUT --allow-errors into a
#                new OUT per round; no output is removed before the end
#                (see "Deleting outputs" below)
#   build-again  the same over the round's build, unchanged
#   matrix       meshc matrix DIR --format json
#   invariants   meshc check DIR --tests FILE, 50 invariants over `edges`
#   inject       meshc inject DIR (every pod template rewritten to stdout)
# and prints per repository the median wall time, the median peak RSS
# ("Maximum resident set size"), the output size (bytes written to stdout;
# for build, the output directory) and each one's ratio to check's, with
# the budgets of issue 23: diff <= 1.5x check (wall and memory), build <=
# 1.5x, matrix <= 2x and under 100 MB, check's peak RSS <= 15x the input;
# and issue 18's: inject <= 1.5x check.
#
# Deleting outputs. On an ext4 without a journal, as on the benchmark
# machines, the kernel skips inodes freed in the last 60 s (300 s while
# their inode table block is dirty) when it allocates new ones
# (`recently_deleted` in fs/ext4/ialloc.c), so creating the 12,500 files of
# a build just after removing the last one's costs 5-10 s of system time
# (docs/benchmarks/scale.md, "Build and the file system"). No timed command
# here follows a mass deletion: every build writes a new directory, and all
# are removed on exit. Leave some minutes between two runs of this script,
# whose exit removes some 250,000 files.
#
# For the in-process figures with a per-stage breakdown, run instead:
#   cargo bench -p meshc --bench check_scale        (MESHC_BENCH_SHAPE=wide too)
#
# Environment: MESHC_BENCH_WORKLOADS (10000), MESHC_BENCH_RUNS (3),
# MESHC_BENCH_SHAPES ("apps wide"), MESHC_BENCH_COMMANDS (the commands to
# time, space-separated; default all; check is always timed, as the base of
# every ratio), MESHC_BENCH_DIR (generate there and
# keep it), CARGO_TARGET_DIR (target).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
runs="${MESHC_BENCH_RUNS:-3}"
shapes="${MESHC_BENCH_SHAPES:-apps wide}"
bench_name="meshc-bench"
# shellcheck source=scripts/bench-setup.sh
. "$root/scripts/bench-setup.sh"
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (GNU time; Debian package time)" >&2; exit 2; }

# A git history whose last commit removes the first AuthorizationPolicy of the first policy file.
remove_one_policy() {
    local repo="$1" one
    one="$(find "$repo" -path '*/policy/*.yaml' ! -name 'authentications.yaml' | sort | sed -n 1p)"
    (
        cd "$repo"
        git init -q && git add -A && git -c user.name=bench -c user.email=bench@example.com commit -qm base
        python3 - "$one" <<'PY'
import sys
path = sys.argv[1]
docs = open(path).read().split("\n---\n")
first = next(j for j, d in enumerate(docs) if "kind: AuthorizationPolicy" in d)
open(path, "w").write("\n---\n".join(d for i, d in enumerate(docs) if i != first))
PY
        git -c user.name=bench -c user.email=bench@example.com commit -qam "remove one AuthorizationPolicy"
    ) >&2
}

all_names="parse-only check diff build build-again matrix invariants inject"
read -r -a names <<<"${MESHC_BENCH_COMMANDS:-$all_names}"
for n in "${names[@]}"; do
    case " $all_names " in *" $n "*) ;; *) echo "MESHC_BENCH_COMMANDS: unknown command $n ($all_names)" >&2; exit 2 ;; esac
done
case " ${names[*]} " in *" check "*) ;; *) names=(check "${names[@]}") ;; esac
timed() { case " ${names[*]} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
declare -A cmd input_bytes
work="$(mktemp -d -t meshc-bench-work-XXXXXX)"
# The builds' outputs go with the work directory, after the last timing
# (bench-setup.sh's trap removes a temporary $dir; this one does that too).
remove_dir=""
[ -n "${MESHC_BENCH_DIR:-}" ] || remove_dir="$dir"
# shellcheck disable=SC2064 # expand now: the paths are known
trap "rm -rf '$work' ${remove_dir:+'$remove_dir'}" EXIT
"$meshc" keygen --out "$work" >&2
for shape in $shapes; do
    repo="$dir/$shape"
    echo "== generating the $shape repository into $repo" >&2
    MESHC_BENCH_SHAPE="$shape" "$bench_bin" --generate "$repo"
    input_bytes[$shape]="$(find "$repo" -name '*.yaml' -exec cat {} + | wc -c)"
    remove_one_policy "$repo"
    if timed invariants; then
        MESHC_BENCH_SHAPE="$shape" "$bench_bin" --invariants "$work/$shape.meshtest.yaml" >&2
    fi
    cmd[$shape/parse-only]="MESHC_BENCH_RUNS=1 $bench_bin --parse-only $repo"
    cmd[$shape/check]="$meshc check $repo --format json"
    cmd[$shape/diff]="cd $repo && $meshc diff HEAD~1 HEAD"
    # --allow-errors: the generators' deliberate errors would stop it.
    # OUT: the round's output directory (`measure`).
    cmd[$shape/build]="$meshc build $repo --key $work/meshc.key --out OUT --allow-errors"
    cmd[$shape/build-again]="${cmd[$shape/build]}"
    cmd[$shape/matrix]="$meshc matrix $repo --format json"
    cmd[$shape/invariants]="$meshc check $repo --tests $work/$shape.meshtest.yaml --format json"
    cmd[$shape/inject]="$meshc inject $repo"
done

# The output directory of a shape's build in a round.
dist() { echo "$work/$1.dist.$2"; }

# One timed run in round $3: "wall_s rss_kib output_bytes".
measure() {
    local shape="$1" name="$2" round="$3" tf="$work/time" bytes out
    out="$(dist "$shape" "$round")"
    bytes="$(/usr/bin/time -v -o "$tf" sh -c "${cmd[$shape/$name]//OUT/$out}" 2>/dev/null | wc -c)" || true
    case "$name" in build | build-again) bytes="$(du -sb "$out" | cut -f1)" ;; esac
    awk -v bytes="$bytes" '
        /Elapsed \(wall clock\)/ { n = split($NF, p, ":"); wall = 0; for (i = 1; i <= n; i++) wall = wall * 60 + p[i] }
        /Maximum resident set size/ { rss = $NF }
        END { printf "%.3f %d %d\n", wall, rss, bytes }' "$tf"
}

echo "== timing: $runs round(s) of ${names[*]} on $shapes, interleaved" >&2
cores_before="$("$bench_bin" --cores)"
declare -A walls rsss sizes
for round in $(seq "$runs"); do
    for shape in $shapes; do
        for name in "${names[@]}"; do
            read -r w r b < <(measure "$shape" "$name" "$round")
            walls[$shape/$name]="${walls[$shape/$name]:-} $w"
            rsss[$shape/$name]="${rsss[$shape/$name]:-} $r"
            sizes[$shape/$name]="$b"
            echo "round $round/$runs $shape $name: $w s, $((r / 1024)) MiB, $b bytes" >&2
        done
    done
done
cores_after="$("$bench_bin" --cores)"

median() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# The signed configs of each build still verify.
if timed build || timed build-again; then
    for shape in $shapes; do
        "$meshc" verify-bundle "$(dist "$shape" "$runs")" --pubkey "$work/meshc.pub" >&2
    done
fi

# One budget line: "NAME what RATIO (<= LIMIT: ok|OVER)", and its RESULT field.
budget() {
    awk -v what="$1" -v x="$2" -v limit="$3" 'BEGIN {
        printf "  %-22s %8.2f (<= %s: %s)\n", what, x, limit, (x <= limit ? "ok" : "OVER") }'
    result="$result ${1// /_}=$2"
}

# The issues' budgets for every timed command of one shape.
budgets() {
    local shape="$1" cw="$2" cr="$3" w r
    result="shape=$shape check_s=$cw check_rss_kib=$cr"
    echo "budgets (issue 23; inject: issue 18):"
    for name in "${names[@]}"; do
        w="$(echo "${walls[$shape/$name]}" | median)"
        r="$(echo "${rsss[$shape/$name]}" | median)"
        case "$name" in
            check) budget "check RSS per input" "$(awk -v r="$cr" -v b="${input_bytes[$shape]}" 'BEGIN { print r * 1024 / b }')" 15 ;;
            diff)
                budget "diff wall x check" "$(awk -v a="$w" -v b="$cw" 'BEGIN { print a / b }')" 1.5
                budget "diff RSS x check" "$(awk -v a="$r" -v b="$cr" 'BEGIN { print a / b }')" 1.5 ;;
            build) budget "build wall x check" "$(awk -v a="$w" -v b="$cw" 'BEGIN { print a / b }')" 1.5 ;;
            matrix)
                budget "matrix wall x check" "$(awk -v a="$w" -v b="$cw" 'BEGIN { print a / b }')" 2
                budget "matrix MB" "$(awk -v b="${sizes[$shape/matrix]}" 'BEGIN { print b / 1e6 }')" 100 ;;
            inject) budget "inject wall x check" "$(awk -v a="$w" -v b="$cw" 'BEGIN { print a / b }')" 1.5 ;;
        esac
    done
    echo "RESULT $result"
}

echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -m), $(nproc) cores; $runs round(s), medians"
echo "before timing: $cores_before"
echo "after timing:  $cores_after"
for shape in $shapes; do
    summary="$("$meshc" check "$dir/$shape" --format json 2>/dev/null || true)"
    resources="$(printf '%s' "$summary" | grep -o '"resources": *[0-9]*' | tail -1 | sed 's/.*: *//' || true)"
    echo
    echo "== $shape: ${resources:-?} resources, $(awk -v b="${input_bytes[$shape]}" 'BEGIN { printf "%.1f MiB", b / 1048576 }') of YAML"
    printf '%-12s %9s %7s %10s %7s %12s\n' command wall/s x-check "RSS/MiB" x-check output
    check_w="$(echo "${walls[$shape/check]}" | median)"
    check_r="$(echo "${rsss[$shape/check]}" | median)"
    for name in "${names[@]}"; do
        w="$(echo "${walls[$shape/$name]}" | median)"
        r="$(echo "${rsss[$shape/$name]}" | median)"
        awk -v n="$name" -v w="$w" -v r="$r" -v cw="$check_w" -v cr="$check_r" -v b="${sizes[$shape/$name]}" 'BEGIN {
            printf "%-12s %9.2f %7.2f %10.0f %7.2f %10.1f MB\n", n, w, w / cw, r / 1024, r / cr, b / 1e6 }'
    done
    budgets "$shape" "$check_w" "$check_r"
done
rm -rf "$work"
