"""CPU per event of the hot-path validation, each way measured on the same lines in
one run: CPU time, garbage collector off (as in the worker's and the ingest's hot
loops), the ways taken in turn for ``--repeat`` rounds and the best pass of each kept
(so a neighbour's burst of load does not fall on one way only):

- ``orjson.loads``: the JSON parse alone (the ceiling of the orjson-based check);
- ``pydantic``: the contract, ``parse_event`` + ``fact_of``;
- ``lean (orjson)``: ``schemas.lean.parse_event_lean`` + ``fact_of_lean``, the check
  that ran first before the typed decode (now its second chance);
- ``typed (msgspec)``: ``schemas.plain.parse_plain`` + ``fact_of_plain``;
- ``facts_of``: what the worker, the ingest and the replay call (typed decode, then
  the lean check, then pydantic);
- with ``--baseline CHECKOUT``: that checkout's ``facts_of`` and ``orjson.loads``
  measured the same way in a child process, on the same lines, once before the ways
  above and once after (the best of both kept, so a change of load in between does
  not favour either side); the ratio is also given against each side's own
  ``orjson.loads``.

    .venv/bin/python bench/lean.py --events-file events.jsonl --lines 200000
    git worktree add --detach ../base a136bdd      # facts_of before the typed decode
    .venv/bin/python bench/lean.py --events-file events.jsonl --baseline ../base
    .venv/bin/python bench/lean.py                 # simulates 200,000 events first

Every way must give pydantic's facts (checked: exit 1 otherwise). The timestamp
caches are emptied before the first round, whose figure is printed too (``first``).
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

Way = Callable[[list[bytes]], list[Any]]


def orjson_only(lines: list[bytes]) -> list[Any]:
    loads = orjson.loads
    return [loads(line) for line in lines]


def rounds(ways: dict[str, Way], lines: list[bytes], repeat: int,
           forget: Callable[[], None]) -> tuple[dict[str, tuple[float, float]],
                                                dict[str, list[Any]]]:
    """{way: (µs/event in the first round, best µs/event)}, and each way's result."""
    gc.collect()
    gc.disable()
    forget()
    passes: dict[str, list[float]] = {name: [] for name in ways}
    results: dict[str, list[Any]] = {}
    try:
        for _ in range(repeat):
            for name, way in ways.items():
                results[name] = []  # the previous result is freed outside the timed part
                started = time.process_time()
                results[name] = way(lines)
                passes[name].append((time.process_time() - started) * 1e6 / len(lines))
    finally:
        gc.enable()
    return {name: (times[0], min(times)) for name, times in passes.items()}, results


def baseline_main(lines_file: str, repeat: int) -> int:
    """In the child: the baseline checkout (first on sys.path) measured, JSON out."""
    from projections.projector import facts_of
    from schemas import lean

    def forget() -> None:
        for name in ("_days", "_hours", "_tails"):
            getattr(lean, name, {}).clear()

    lines = Path(lines_file).read_bytes().split(b"\n")
    figures, _ = rounds({"orjson.loads": orjson_only, "facts_of": facts_of}, lines, repeat,
                        forget)
    print(json.dumps(figures))
    return 0


def load_lines(args: argparse.Namespace) -> list[bytes]:
    if args.events_file:
        with open(args.events_file, "rb") as source:
            lines = [line.rstrip(b"\n") for line in islice(source, args.lines)]
    else:
        from dispatch.simulation import SimulationPlan, simulate_lines, write_jsonl

        plan = SimulationPlan(seed=7, target_events=args.lines, storm_days=(2, 9),
                              duplicate_rate=0.01, shuffle=True, late_rate=0.01)
        stream = io.BytesIO()
        write_jsonl(simulate_lines(plan), stream)
        lines = stream.getvalue().splitlines()[:args.lines]
    return [line for line in lines if line.strip()]


def measure_baseline(checkout: str, lines: list[bytes], repeat: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as file:
        file.write(b"\n".join(lines))
        file.flush()
        code = (f"import sys; sys.path.insert(0, {str(Path(checkout).resolve())!r}); "
                f"sys.path.insert(1, {str(Path(__file__).parent)!r}); import lean; "
                f"sys.exit(lean.baseline_main({file.name!r}, {repeat}))")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=False)
    if done.returncode != 0:
        raise SystemExit(f"the baseline failed:\n{done.stderr}")
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events-file", metavar="PATH",
                        help="JSON Lines to measure on (default: simulate --lines events)")
    parser.add_argument("--lines", type=int, default=200_000, help="lines to use")
    parser.add_argument("--repeat", type=int, default=7, help="rounds (best pass kept)")
    parser.add_argument("--baseline", metavar="CHECKOUT",
                        help="another checkout of this repository: its facts_of is "
                             "measured on the same lines first")
    args = parser.parse_args()
    repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo))
    from projections.incident import fact_of, fact_of_lean, fact_of_plain
    from projections.projector import facts_of
    from schemas import lean
    from schemas.lean import parse_event_lean
    from schemas.parsing import parse_event
    from schemas.plain import parse_plain

    def pydantic_facts(lines: list[bytes]) -> list[Any]:
        return [fact_of(parse_event(line)) for line in lines]

    def lean_facts(lines: list[bytes]) -> list[Any]:
        check, fact = parse_event_lean, fact_of_lean
        return [fact(event) if (event := check(line)) is not None else None
                for line in lines]

    def typed_facts(lines: list[bytes]) -> list[Any]:
        check, fact = parse_plain, fact_of_plain
        return [fact(*found) if (found := check(line)) is not None else None
                for line in lines]

    def forget() -> None:
        lean._hours.clear()
        lean._tails.clear()

    lines = load_lines(args)
    load = os.getloadavg()
    print(f"{len(lines):,} lines; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    base = measure_baseline(args.baseline, lines, args.repeat) if args.baseline else None
    figures, results = rounds({"orjson.loads": orjson_only, "pydantic": pydantic_facts,
                               "lean (orjson)": lean_facts, "typed (msgspec)": typed_facts,
                               "facts_of": facts_of}, lines, args.repeat, forget)
    if base is not None:
        again = measure_baseline(args.baseline, lines, args.repeat)
        base = {name: [min(pair[0], again[name][0]), min(pair[1], again[name][1])]
                for name, pair in base.items()}
    if base is not None:
        for name, (first, best) in base.items():
            print(f"  baseline {name:16} {best:6.2f} µs/event (first round {first:.2f})")
    for name, (first, best) in figures.items():
        print(f"  {name:25} {best:6.2f} µs/event (first round {first:.2f})")
    expected = results.pop("pydantic")
    results.pop("orjson.loads")
    for name, result in results.items():
        taken = sum(1 for fact in result if fact is not None)
        same = all(fact is None or fact == want
                   for fact, want in zip(result, expected, strict=True))
        print(f"  {name}: took {taken:,} of {len(lines):,} lines, facts equal to "
              f"pydantic's: {same}")
        if not same:
            return 1
    best = {name: pair[1] for name, pair in figures.items()}
    print(f"typed / lean {best['typed (msgspec)'] / best['lean (orjson)']:.2f}; "
          f"typed / orjson.loads {best['typed (msgspec)'] / best['orjson.loads']:.2f}; "
          f"pydantic / facts_of {best['pydantic'] / best['facts_of']:.1f}x")
    if base is not None:
        before, after = base["facts_of"][1], best["facts_of"]
        own_before = before / base["orjson.loads"][1]
        own_after = after / best["orjson.loads"]
        print(f"facts_of: baseline {before:.2f} -> {after:.2f} µs/event, "
              f"{before / after:.2f}x faster; in orjson.loads of the same process: "
              f"{own_before:.2f} -> {own_after:.2f}, {own_before / own_after:.2f}x")
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
