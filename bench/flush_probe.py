"""How long the disk takes to make 8 kB durable, sampled beside a benchmark.

A read model's commit returns only once PostgreSQL has flushed its WAL
(``fdatasync``), so a disk that stalls a flush stalls every commit waiting on it.
``FlushProbe`` writes 8 kB into its own file and ``fdatasync``s it every
``every_s`` seconds on a thread, recording when each flush started and how long
it took. Run it in a folder on the same file system as the database's WAL.

The probe adds its own small load (8 kB and one flush per sample), so it is
kept to one flush every 20 ms by default. ``late_explained`` tells how many of a
benchmark's late messages were in flight while some flush stalled: those waited
on the disk, whatever the code did.

Usage on its own (idle machine, 40 s)::

    .venv/bin/python bench/flush_probe.py /var/lib/postgresql --seconds 40
"""

from __future__ import annotations

import argparse
import bisect
import os
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

PAGE = 8192


class FlushProbe:
    def __init__(self, folder: Path, every_s: float = 0.02) -> None:
        self.folder = folder
        self.every_s = every_s
        self.samples: list[tuple[float, float]] = []
        """(perf_counter at the flush's start, seconds it took)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flush-probe", daemon=True)

    def __enter__(self) -> FlushProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        fd, name = tempfile.mkstemp(prefix="flush-probe-", dir=self.folder)
        try:
            os.ftruncate(fd, PAGE * 256)
            page = os.urandom(PAGE)
            i = 0
            while not self._stop.is_set():
                os.pwrite(fd, page, (i % 256) * PAGE)
                i += 1
                began = time.perf_counter()
                os.fdatasync(fd)
                self.samples.append((began, time.perf_counter() - began))
                self._stop.wait(self.every_s)
        finally:
            os.close(fd)
            os.unlink(name)

    def stalls(self, longer_than_s: float) -> list[tuple[float, float]]:
        """The flushes that took longer than ``longer_than_s``, as (start, end)."""
        return [(start, start + took) for start, took in self.samples if took > longer_than_s]

    def summary(self, stall_s: float = 0.1) -> dict[str, float]:
        took = sorted(t for _s, t in self.samples)
        if not took:
            return {"flushes": 0}
        ms = 1000.0
        return {
            "flushes": len(took),
            "p50_ms": took[len(took) // 2] * ms,
            "p99_ms": took[min(len(took) - 1, int(len(took) * 0.99))] * ms,
            "max_ms": took[-1] * ms,
            "stall_ms": stall_s * ms,
            "stalls": sum(1 for t in took if t > stall_s),
        }


def late_explained(in_flight: Iterable[tuple[float, float]],
                   stalls: list[tuple[float, float]]) -> int:
    """How many (sent, seen) intervals overlap at least one stall (start, end)."""
    starts = [start for start, _end in stalls]
    ends = [end for _start, end in stalls]
    count = 0
    for sent, seen in in_flight:
        # The stalls starting before ``seen``; any of them still running at ``sent``?
        k = bisect.bisect_left(starts, seen)
        if k and max(ends[:k]) > sent:
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a folder on the disk to probe")
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--every-ms", type=float, default=20.0)
    args = parser.parse_args()
    with FlushProbe(args.folder, args.every_ms / 1000) as probe:
        time.sleep(args.seconds)
    s = probe.summary()
    print(f"fdatasync of 8 kB in {args.folder}, {s['flushes']:.0f} flushes in "
          f"{args.seconds:.0f} s, load {os.getloadavg()[0]:.2f}: p50 {s['p50_ms']:.2f} ms, "
          f"p99 {s['p99_ms']:.1f} ms, max {s['max_ms']:.0f} ms, "
          f"{s['stalls']:.0f} over {s['stall_ms']:.0f} ms")


if __name__ == "__main__":
    main()
