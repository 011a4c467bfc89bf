"""The top functions of one `callgrind_annotate` listing (stdin), per
request, as a markdown table. Arguments: requests, how many functions, a
label for the heading, and whether the listing is inclusive (yes/no)."""

import re
import sys

LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(.*)$")


def short(name):
    """`file:function [object]` → `function (object)` when the object is not the proxy."""
    obj = ""
    m = re.match(r"^(.*) \[(.*)\]$", name)
    if m:
        name, obj = m.group(1), m.group(2).rsplit("/", 1)[-1]
    # The file ends at the first single colon (Rust paths use `::`).
    m = re.match(r"^((?:[^:]|::)*?):(?!:)(.*)$", name)
    if m:
        name = m.group(2)
    if len(name) > 110:
        name = name[:107] + "..."
    name = name.replace("|", "\\|")
    return f"`{name}`" + ("" if obj in ("", "mesh-proxy") else f" ({obj})")


def main():
    requests, top, label, inclusive = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "yes"
    rows, in_table = [], False
    for line in sys.stdin:
        if line.startswith("Ir") and "file:function" in line:
            in_table = True
            continue
        if not in_table or line.startswith("-"):
            continue
        if not line.strip():
            if rows:
                break
            continue
        m = LINE.match(line)
        if m and "PROGRAM TOTALS" not in m.group(3):
            rows.append((int(m.group(1).replace(",", "")), float(m.group(2)), m.group(3)))
    kind = "inclusive" if inclusive else "own (self)"
    print(f"\n{label}: top {top} functions by {kind} instructions\n")
    print("| instructions per request | % | function |")
    print("|---|---|---|")
    for ir, pct, name in rows[:top]:
        print(f"| {ir / requests:,.0f} | {pct:.1f} | {short(name)} |")


if __name__ == "__main__":
    main()
