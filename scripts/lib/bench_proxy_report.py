"""The markdown tables of scripts/bench-proxy.sh, from its results.jsonl.

One table per scenario load (scenario, rate, connections): medians over
rounds per target, latency added over `direct` of the same load, and the
proxies' added latency and CPU as multiples of HAProxy's. Under a table
with `meshed`: its added latency against issue 21's absolute targets, and
as multiples of `haproxy-meshed`'s (two HAProxies and mTLS in the same
layout), which tells what of it any two proxies would cost here. Then the
soak: each proxy process's RSS at the start and at the end.
"""

import json
import statistics
import sys

ORDER = ["direct", "haproxy", "nginx", "proxy", "haproxy-meshed", "meshed"]
# What each target's processes are, in the order their memory is listed.
PROCESSES = {
    "haproxy": "haproxy",
    "nginx": "nginx",
    "proxy": "server",
    "haproxy-meshed": "server / client",
    "meshed": "server / client",
}
# Issue 21's meshed-path targets: (scenario, rate) -> (text, test of a target's stats).
MESHED_TARGETS = {
    ("base", 1000): ("added p50 ≤ 200 µs", lambda s: s["added"]["p50_us"] <= 200),
    ("base", 5000): ("p99 < 2 ms", lambda s: s["p99_us"] < 2000),
}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=0):
    return "–" if x is None else f"{x:.{digits}f}"


def ratio(x, base):
    # A negative added latency (a target's tail under `direct`'s, as happens
    # in short runs) makes no multiple.
    return "–" if x is None or x < 0 or not base or base <= 0 else f"{x / base:.2f}×"


def mb(kb):
    return f"{kb / 1024:.1f}"


def memory(rows):
    """RSS at the end (median over rounds) and the peak, per process."""
    per_process = list(zip(*[r["mem_kb"] for r in rows]))
    parts = [f"{mb(med([m[0] for m in p]))} ({mb(max(m[1] for m in p))})" for p in per_process]
    return " / ".join(parts) if parts else "–"


def load_table(scenario, rate, conns, groups):
    print(f"\n**{scenario}**: {rate} rps, {conns} connections\n")
    print("| target | p50 µs | p99 µs | p99.9 µs | added p50 µs | added p99 µs | added p50, p99 ×HAProxy "
          "| CPU µs/req (sys) | CPU ×HAProxy | RSS MB (peak) | requests | non-2xx / errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    stats = {}
    for t, rows in groups.items():
        stats[t] = {k: med([r[k] for r in rows]) for k in ("p50_us", "p99_us", "p999_us", "cpu_us_per_req", "sys_us_per_req")}
    base = stats.get("direct", {})
    for t in (t for t in ORDER if t in groups):
        s, rows = stats[t], groups[t]
        added = {k: None if t == "direct" or base.get(k) is None else s[k] - base[k] for k in ("p50_us", "p99_us")}
        s["added"] = added
        hap = stats.get("haproxy", {})
        vs = "–"
        if t not in ("direct", "haproxy") and "added" in hap:
            vs = f"{ratio(added['p50_us'], hap['added']['p50_us'])}, {ratio(added['p99_us'], hap['added']['p99_us'])}"
        cpu = "–" if t == "direct" else f"{fmt(s['cpu_us_per_req'], 1)} ({fmt(s['sys_us_per_req'], 1)})"
        cpu_vs = "–" if t in ("direct", "haproxy") else ratio(s["cpu_us_per_req"], hap.get("cpu_us_per_req"))
        mem = "–" if t == "direct" else memory(rows)
        print(f"| {t} | {fmt(s['p50_us'])} | {fmt(s['p99_us'])} | {fmt(s['p999_us'])} | {fmt(added['p50_us'])} "
              f"| {fmt(added['p99_us'])} | {vs} | {cpu} | {cpu_vs} | {mem} | {sum(r['requests'] for r in rows)} "
              f"| {sum(r['non_2xx'] for r in rows)} / {sum(r['errors'] for r in rows)} |")
    return stats


def meshed_lines(scenario, rate, stats):
    """The meshed path: absolute figures (and the target at this load), then
    the same as multiples of the like-for-like HAProxy pair."""
    m, h = stats.get("meshed"), stats.get("haproxy-meshed")
    if not m or m["added"]["p50_us"] is None:
        return
    line = f"- meshed, absolute: added p50 {fmt(m['added']['p50_us'])} µs, p99 {fmt(m['p99_us'])} µs"
    has_h = bool(h) and h["added"]["p50_us"] is not None
    goal = MESHED_TARGETS.get((scenario, rate))
    if goal:
        text, test = goal
        verdict = lambda s: "met" if test(s) else "not met"
        line += f" (target {text}: {verdict(m)}" + (f"; haproxy-meshed: {verdict(h)})" if has_h else ")")
    print("\n" + line)
    if has_h:
        pairs = [
            ("added p50", m["added"]["p50_us"], h["added"]["p50_us"], " µs", 0),
            ("added p99", m["added"]["p99_us"], h["added"]["p99_us"], " µs", 0),
            ("p99", m["p99_us"], h["p99_us"], " µs", 0),
            ("CPU", m["cpu_us_per_req"], h["cpu_us_per_req"], " µs/req", 1),
        ]
        parts = [f"{name} {fmt(a, d)} / {fmt(b, d)}{unit} = {ratio(a, b)}" for name, a, b, unit, d in pairs]
        print("- meshed ×haproxy-meshed: " + "; ".join(parts))


def soak_table(rows):
    print("\n**soak**: RSS MB at the start → at the end of the run, per process\n")
    print("| target | processes | rate (rps) | requests | p50 µs | p99 µs | CPU µs/req | RSS start → end MB | non-2xx / errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: ORDER.index(r["target"])):
        rss = " / ".join(f"{mb(a[0])} → {mb(b[0])}" for a, b in zip(r["mem_start_kb"], r["mem_kb"]))
        print(f"| {r['target']} | {PROCESSES.get(r['target'], '')} | {r['rate']} | {r['requests']} | {fmt(r['p50_us'])} "
              f"| {fmt(r['p99_us'])} | {fmt(r['cpu_us_per_req'], 1)} | {rss} | {r['non_2xx']} / {r['errors']} |")


def main(path):
    rows = [json.loads(line) for line in open(path)]
    loads = {}
    for r in rows:
        if r["scenario"] != "soak":
            loads.setdefault((r["scenario"], r["rate"], r["connections"]), {}).setdefault(r["target"], []).append(r)
    for (scenario, rate, conns), groups in loads.items():
        meshed_lines(scenario, rate, load_table(scenario, rate, conns, groups))
    soak = [r for r in rows if r["scenario"] == "soak"]
    if soak:
        soak_table(soak)
    rounds = len({r["round"] for r in rows if r["scenario"] != "soak"})
    print(f"\n{len(rows)} runs; medians over {rounds} round(s). CPU and RSS are the proxy processes' "
          f"(meshed and haproxy-meshed: both proxies' CPU; RSS {PROCESSES['meshed']}). "
          f"\"added\" is over `direct` at the same load.")


if __name__ == "__main__":
    main(sys.argv[1])
