"""The code one callgrind dump ran, as a markdown table row: distinct 64-byte
lines (in KiB) and 4 KiB pages holding an instruction with a cost. The dump
must carry per-instruction positions (`valgrind --tool=callgrind
--dump-instr=yes`). Arguments: the dump, the target and the process names.

A request that arrives at an idle process finds these lines evicted by the
kernel and the other processes that ran meanwhile, and fetches them again:
it is the part of a request's cost that its instruction count leaves out."""

import sys

# A cost line starts with its instruction address, an offset into the object
# named by the last `ob=` line: absolute (0x...), relative to the previous
# one (+N, -N, decimal), or the same (*).
POSITION_START = ("0x", "+", "-", "*")


def address(token, last):
    if token == "*":
        return last
    if token[0] in "+-":
        sign = 1 if token[0] == "+" else -1
        return last + sign * int(token[1:])
    return int(token, 16)


def main():
    path, target, process = sys.argv[1], sys.argv[2], sys.argv[3]
    lines, pages, last, call_cost, obj = set(), set(), 0, False, ""
    with open(path, errors="replace") as dump:
        for raw in dump:
            if raw.startswith("ob="):
                # `ob=(N) name` the first time, `ob=(N)` after.
                obj = raw[3:].split(")", 1)[0]
                continue
            if raw.startswith("calls="):
                # The next line is the call's inclusive cost, at the call's address.
                call_cost = True
                continue
            if not raw.startswith(POSITION_START):
                continue
            fields = raw.split()
            last = address(fields[0], last)
            if call_cost:
                call_cost = False
                continue
            # Address, line, Ir.
            if len(fields) >= 3 and int(fields[2]) > 0:
                lines.add((obj, last >> 6))
                pages.add((obj, last >> 12))
    print(f"| {target} | {process} | {len(lines) * 64 / 1024:.1f} | {len(pages)} |")


if __name__ == "__main__":
    main()
