"""How busy this host's memory is, measured the same way by every bench, so each result file
says whether its figures came from a quiet or a busy machine.

The probe is numpy's sum of a 16 MB float32 frame read from memory (eight frames in turn,
128 MB, more than any cache here): one streaming pass, the yardstick the finder benches use.
On the project's 2-core VM it takes 0.69 ms when nothing else runs; on a busy host of the same
kind it was seen at 1.4–1.8 ms, with every bench figure 2–2.6× slower.
"""
import time

import numpy as np

# The 2-core VM's probe when quiet (benches/results/pf8_sample_2026-12-05.txt).
QUIET_MS = 0.69
# Above this multiple of QUIET_MS a result file calls its host busy.
BUSY_FACTOR = 1.3


def memory_pass_ms(rounds=5):
    """Median over `rounds` of the mean time of one pass over eight 16 MB frames in turn."""
    frames = [np.full(1 << 22, k, dtype=np.float32) for k in range(8)]
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        for f in frames:
            f.sum()
        times.append((time.perf_counter() - t) / len(frames))
    return 1e3 * sorted(times)[len(times) // 2]


def describe(ms=None):
    """One line for a result file's header: the probe and whether the host was busy."""
    ms = memory_pass_ms() if ms is None else ms
    state = "busy host" if ms > BUSY_FACTOR * QUIET_MS else "quiet host"
    return "memory probe %.2f ms a 16 MB pass (%.2f on the quiet 2-core VM): %s" % (ms, QUIET_MS, state)


if __name__ == "__main__":
    print(describe())
