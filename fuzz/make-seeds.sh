#!/usr/bin/env bash
# Regenerates the seed corpus fuzz/corpus/ from policies-examples: the
# manifests (load), booksapp-rest's ProxyConfig objects as `meshc build`
# writes them (proxy_config) and their DSSE envelopes (envelope_open), and
# API requests (runtime_request). Run it when the ProxyConfig format
# changes, and commit the result. Needs python3 (to pull the envelopes out).
#
# The configs are signed with the fuzz targets' fixed test key (the Ed25519
# seed of 32 bytes 0x07, fuzz/src/lib.rs), so mutations of a seed reach
# payload decoding rather than stopping at the signature.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
meshc="${MESHC:-$root/target/debug/meshc}"
if [ ! -x "$meshc" ]; then
    echo "==> building meshc (debug)"
    (cd "$root" && cargo build -p meshc)
fi
corpus="$root/fuzz/corpus"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# PKCS#8 of the test seed (not a secret: it signs only these seeds).
kind="PRIVATE KEY"
printf -- '-----BEGIN %s-----\n%s\n-----END %s-----\n' "$kind" \
    "MC4CAQAwBQYDK2VwBCIEIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH" "$kind" > "$work/key.pem"

mkdir -p "$corpus/load" "$corpus/proxy_config" "$corpus/envelope_open" "$corpus/runtime_request"
(cd "$root/policies-examples" && find . -name '*.yaml' | sort) | while read -r f; do
    cp "$root/policies-examples/$f" "$corpus/load/$(echo "${f#./}" | tr / -)"
done

echo "==> signing booksapp-rest's configs with the fuzz key"
"$meshc" build "$root/policies-examples/booksapp-rest" --key "$work/key.pem" --out "$work/out" --revision fuzz-seeds
for f in "$work"/out/configs/*/*.yaml; do
    name="$(basename "$(dirname "$f")")-$(basename "$f")"
    cp "$f" "$corpus/proxy_config/$name"
    python3 -c 'import json,sys; t=open(sys.argv[1]).read().lstrip().removeprefix("---"); print(json.dumps(json.loads(t)["spec"]["envelope"]), end="")' \
        "$f" > "$corpus/envelope_open/${name%.yaml}.json"
done

printf '%s' $'/v1/config\nworkload=Deployment%2Fbooksapp%2Fwebapp&after=sha256%3Aab&wait=5' > "$corpus/runtime_request/config"
printf '%s' $'/v1/endpoints/booksapp/webapp/7000\nwait=30' > "$corpus/runtime_request/endpoints"
printf '%s' $'/v1/endpoints/a%2Fb/c+d/65535\nwait=9999&x=%zz' > "$corpus/runtime_request/escapes"
echo "==> seeds written to $corpus"
