#!/usr/bin/env python3
"""Independent numpy reference for `protobrain matmul`.

Recomputes DESIGN.md's arithmetic from the input .npy files and compares it with the CLI's
outputs, element for element:

    acc = sum_k X[m][k] * W[k][n]                 (int32, two's complement wrap)
    v   = (acc + b[n]) wrapped to int32, * M      (M: 0..=65535)
    r   = S == 0 ? v : (v + (1 << (S - 1))) >> S   (arithmetic shift = floor division)
    r   = relu ? max(r, 0) : r
    y   = clamp(r, -128, 127) as int8
    raw output: acc + b[n] wrapped to int32

Usage: numpy_reference.py MANIFEST

MANIFEST has one case per line, tab separated:
    name  X.npy  W.npy  B.npy|-  raw|quant  M  S  relu(0|1)  Y.npy

Exit status: 0 all equal, 1 a mismatch (details on stderr), 3 numpy missing, 2 bad usage.
"""

import sys

try:
    import numpy as np
except ImportError:
    print(
        f"numpy_reference.py: numpy is not installed for {sys.executable}; "
        "run scripts/setup.sh",
        file=sys.stderr,
    )
    sys.exit(3)

I32_MIN = -(1 << 31)


def wrap_i32(a):
    """Two's complement wrap of an int64 array to the int32 range (still int64)."""
    return ((a - I32_MIN) & 0xFFFF_FFFF) + I32_MIN


def reference(x, w, b, raw, m, s, relu):
    """DESIGN.md's layer in exact int64 arithmetic."""
    assert x.dtype == np.int8 and w.dtype == np.int8 and b.dtype == np.int32
    k = x.shape[1]
    # |sum| <= K * 2^14 must stay exact in int64 before the wrap.
    assert k * (1 << 14) < (1 << 62), "K too large for exact int64 sums"
    acc = wrap_i32(x.astype(np.int64) @ w.astype(np.int64))
    t = wrap_i32(acc + b.astype(np.int64)[np.newaxis, :])
    if raw:
        return t.astype(np.int32)
    assert 0 <= m <= 65535 and 0 <= s <= 47
    v = t * np.int64(m)  # |v| <= 2^31 * 65535 < 2^47
    r = v if s == 0 else (v + np.int64(1 << (s - 1))) >> np.int64(s)  # numpy >> is arithmetic
    if relu:
        r = np.maximum(r, 0)
    return np.clip(r, -128, 127).astype(np.int8)


STATS = {"elements": 0, "int8": 0, "interior": 0}


def check(fields):
    name, xp, wp, bp, mode, m, s, relu, yp = fields
    x = np.load(xp)
    w = np.load(wp)
    b = np.zeros(w.shape[1], dtype=np.int32) if bp == "-" else np.load(bp)
    want = reference(x, w, b, mode == "raw", int(m), int(s), relu == "1")
    got = np.load(yp)
    if got.dtype != want.dtype or got.shape != want.shape:
        return f"{name}: output is {got.dtype} {got.shape}, expected {want.dtype} {want.shape}"
    STATS["elements"] += want.size
    if want.dtype == np.int8:
        STATS["int8"] += want.size
        STATS["interior"] += int(np.count_nonzero((want > -128) & (want < 127) & (want != 0)))
    if not np.array_equal(got, want):
        bad = np.argwhere(got != want)
        shown = ", ".join(
            f"{tuple(int(i) for i in idx)}: got {got[tuple(idx)]} want {want[tuple(idx)]}"
            for idx in bad[:5]
        )
        return f"{name}: {len(bad)} of {want.size} elements differ ({shown})"
    return None


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        cases = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    failures = [msg for msg in (check(c) for c in cases) if msg]
    for msg in failures:
        print(f"MISMATCH {msg}", file=sys.stderr)
    print(f"numpy_reference: {len(cases)} cases, {len(cases) - len(failures)} equal, "
          f"{len(failures)} differ (numpy {np.__version__})")
    # How much of the int8 range the cases exercise: "interior" outputs are neither saturated
    # nor 0, so rounding decides them.
    print("numpy_reference stats: " + " ".join(f"{k}={v}" for k, v in STATS.items()))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
