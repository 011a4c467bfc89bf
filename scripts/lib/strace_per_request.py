"""System calls per request from an `strace -c` summary file, as a markdown
table. Arguments: the file, the number of requests, a label."""

import sys


def main():
    path, requests, label = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rows = []
    for line in open(path):
        parts = line.split()
        if parts and parts[-1] == "total":
            continue
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(parts) >= 5 and parts[0].replace(".", "").isdigit() and parts[3].isdigit():
            errors = int(parts[4]) if len(parts) == 6 else 0
            rows.append((int(parts[3]), errors, parts[-1]))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    print(f"\n{label}: {total / requests:.2f} system calls per request\n")
    print("| system call | per request | of which failed (EAGAIN, ...) |")
    print("|---|---|---|")
    for calls, errors, name in rows:
        # Calls made once (setup, teardown) are not per request.
        if calls / requests >= 0.01:
            print(f"| `{name}` | {calls / requests:.2f} | {errors / requests:.2f} |")


if __name__ == "__main__":
    main()
