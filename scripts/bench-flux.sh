#!/usr/bin/env bash
# The 10,000-workload benchmark laid out as a Flux repository, timed once.
#
# Generates the synthetic repository of compiler/benches/check_scale.rs, then
# lays it out as
#   apps/base/NS/      the generated files of namespace NS + a kustomization
#   apps/prod/NS/      an overlay of ../../base/NS adding the annotation
#                      `team: ${TEAM}` to every object (commonAnnotations)
#   clusters/prod/     one Flux Kustomization per namespace, path
#                      ./apps/prod/NS, postBuild.substitute TEAM
# and the rendered output the same Kustomizations would apply (kustomize
# build of each overlay, TEAM substituted) in rendered/. Times, one run each:
#   kustomize   building every overlay, two at a time (as meshc runs them on
#               two cores), plain `kubectl kustomize` (or kustomize build)
#   rendered    meshc check rendered/ --format json
#   flux        meshc check clusters/prod --root REPO --format json
# Budget (issue 16): flux <= 1.5 x rendered + kustomize.
#
# Environment: MESHC_BENCH_WORKLOADS (10000), MESHC_BENCH_DIR (generate
# there and keep it), CARGO_TARGET_DIR (target), KUSTOMIZE (kubectl).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bench_name=meshc-bench-flux
# shellcheck source=scripts/bench-setup.sh
. "$root/scripts/bench-setup.sh"
kz="${KUSTOMIZE:-kubectl}"
case "$(basename "$kz")" in kubectl*) build="kustomize" ;; *) build="build" ;; esac
gen="$dir/generated"
repo="$dir/repo"

echo "== generating into $gen" >&2
"$bench_bin" --generate "$gen" >&2

echo "== laying out $repo" >&2
mkdir -p "$repo/clusters/prod" "$repo/rendered"
cp "$gen/meshc.yaml" "$repo/clusters/prod/" 2>/dev/null || true
cp "$gen/meshc.yaml" "$repo/rendered/" 2>/dev/null || true
for ns_dir in "$gen"/*/; do
    ns="$(basename "$ns_dir")"
    mkdir -p "$repo/apps/base/$ns" "$repo/apps/prod/$ns"
    cp -r "$ns_dir". "$repo/apps/base/$ns/"
    {
        echo "resources:"
        (cd "$repo/apps/base/$ns" && find . -name '*.yaml' ! -name kustomization.yaml | sort | sed 's|^\./|- |')
    } > "$repo/apps/base/$ns/kustomization.yaml"
    printf 'resources:\n- ../../base/%s\ncommonAnnotations:\n  team: ${TEAM}\n' "$ns" \
        > "$repo/apps/prod/$ns/kustomization.yaml"
    printf 'apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: %s, namespace: flux-system}\nspec:\n  path: ./apps/prod/%s\n  postBuild:\n    substitute: {TEAM: payments}\n---\n' "$ns" "$ns" \
        >> "$repo/clusters/prod/apps.yaml"
done
overlays="$(ls "$repo/apps/prod" | wc -l)"

now() { date +%s.%N; }
echo "== kustomize: $overlays overlays, two at a time" >&2
t0="$(now)"
ls "$repo/apps/prod" | xargs -P 2 -I{} sh -c \
    "'$kz' $build '$repo/apps/prod/{}' | sed 's/\\\${TEAM}/payments/' > '$repo/rendered/{}.yaml'"
t1="$(now)"
echo "== meshc check rendered/" >&2
"$meshc" check "$repo/rendered" --format json > "$dir/rendered.json" || true
t2="$(now)"
echo "== meshc check clusters/prod" >&2
"$meshc" check "$repo/clusters/prod" --root "$repo" --format json > "$dir/flux.json" || true
t3="$(now)"

summary() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\"summary\"])" "$1"; }
awk -v k="$t0" -v k1="$t1" -v r="$t2" -v f="$t3" 'BEGIN {
    kust = k1 - k; rendered = r - k1; flux = f - r;
    printf "kustomize (all overlays): %.2f s\nmeshc check rendered/:    %.2f s\nmeshc check clusters/prod: %.2f s\n", kust, rendered, flux;
    printf "flux / rendered: %.2f\n(flux - kustomize) / rendered: %.2f (budget <= 1.5)\n", flux / rendered, (flux - kust) / rendered;
}'
echo "rendered: $(summary "$dir/rendered.json")"
echo "flux:     $(summary "$dir/flux.json")"
