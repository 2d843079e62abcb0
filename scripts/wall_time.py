#!/usr/bin/env python3
"""Wall time of one command line run by several binaries, interleaved, for before/after figures.

Usage: scripts/wall_time.py BIN[,BIN...] [--runs N] -- ARGS...
e.g.   scripts/wall_time.py /tmp/pb-before,target/release/protobrain -- estimate --gemm 512,256,256 --dim 16

Each binary runs ARGS N times (default 40), the binaries taking turns, so that a change in the
machine's load hits all of them alike. Prints best, 25th percentile and median per binary, in ms.
The figures include Python's fork/exec (~0.6 ms here); compare binaries within one run only.
"""
import statistics
import subprocess
import sys
import time


def main() -> None:
    argv = sys.argv[1:]
    if "--" not in argv or argv.index("--") == 0:
        sys.exit(__doc__)
    sep = argv.index("--")
    opts, args = argv[:sep], argv[sep + 1:]
    bins = opts[0].split(",")
    runs = int(opts[opts.index("--runs") + 1]) if "--runs" in opts else 40
    times = {b: [] for b in bins}
    for _ in range(runs):
        for b in bins:
            t = time.perf_counter()
            done = subprocess.run([b] + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            times[b].append((time.perf_counter() - t) * 1e3)
            if done.returncode != 0:
                sys.exit(f"{b} failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()}")
    for b in bins:
        v = sorted(times[b])
        print(f"{b}: best {v[0]:.2f} ms, p25 {v[len(v) // 4]:.2f} ms, median {statistics.median(v):.2f} ms")


if __name__ == "__main__":
    main()
