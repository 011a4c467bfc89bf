#!/usr/bin/env python3
"""CPU time per pipeline stage from a `perf record --call-graph dwarf` of meshc.

    perf record -e cpu-clock -F 250 --call-graph dwarf,16384 -o perf.data meshc diff HEAD~1 HEAD
    perf script -i perf.data -F comm,tid,ip,sym | scripts/perf-stages.py 250

Each sample (of every thread, `git` included) counts for the first stage
whose function is on its stack, in the order below; the rest are listed by
their leaf function. Used for docs/benchmarks/profile.md (fifth session).
"""
import collections
import sys

STAGES = [
    ("git read", ["cat_blobs", "read_revisions", "read_blob"]),
    ("parse digest", ["load::digest", "ParseCache>::put", "ParseCache>::take"]),
    ("parse", ["parse_into", "objects_of"]),
    ("decode cache", ["DecodeCache::take", "DecodeCache::put"]),
    ("decode", ["decode_all_cached", "decode_with_id"]),
    ("drop shared scalars", ["drop_shared_scalars", "drop_decoded_scalars"]),
    ("malloc_trim", ["malloc_trim"]),
    ("resolve", ["resolve::resolve"]),
    ("lower", ["lower::lower_all", "lower_workload"]),
    ("analyze, finish", ["analyze::analyze", "outbound::analyze", "pipeline::finish", "pipeline::complete"]),
    ("classes", ["Classes::derive", "Addresses::shared", "Sides::new", "derive_with"]),
    ("compare", ["diff::edges", "target_changes", "diff::diff", "diff::egress", "config_changes", "finding_changes"]),
    ("flux/render", ["flux::expand", "render_releases", "render::"]),
    ("settings", ["read_settings", "helm_values", "chart_version"]),
    ("prepare, other", ["pipeline::prepare", "versions::unserved", "multicluster"]),
]


def stage_of(comm, stack):
    if comm == "git":
        return "git read (the git process)"
    text = " ".join(stack)
    for name, patterns in STAGES:
        if any(p in text for p in patterns):
            return name
    leaf = stack[0].split(None, 1) if stack else ["?"]
    return "other: " + leaf[-1][:60]


def main():
    hz = float(sys.argv[1]) if len(sys.argv) > 1 else 250.0
    counts = collections.Counter()
    comm, stack = "", []
    for line in list(sys.stdin) + [""]:
        if line.strip() and line[0] in " \t":
            stack.append(line.strip())
            continue
        if stack:
            counts[stage_of(comm, stack)] += 1
        comm, stack = (line.split() or [""])[0], []
    total = sum(counts.values()) or 1
    for name, n in counts.most_common(30):
        print(f"{name:48s} {n:6d} {n / hz:7.2f} s {100 * n / total:5.1f}%")
    print(f"{'total':48s} {total:6d} {total / hz:7.2f} s")


if __name__ == "__main__":
    main()
