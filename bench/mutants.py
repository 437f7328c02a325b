"""Mutation run over the pure fold: which small wrong versions of ``projections/``
do the tests fail to notice?

Each mutant changes one thing in one module of a scratch copy of the repository
(the working tree is never touched) and runs the server-free tests that judge
the fold (the oracle and property tests, duty periods, the projector and store
contracts on memory and SQLite) against that copy. A mutant is *killed* when
they fail, *survives* when they pass; survivors are printed with the change.

Mutants, in order:
- **named** ones, wrong rules a careless implementation could have: arrival from
  t2, ``closed`` never counted, grid and area from the latest call, the crew from
  the dispatch first, ``>`` for ``>=`` at the period end, the latest instead of
  the earliest checkpoint, merged incidents counted, a 24-hour period in UTC;
- **operator** ones generated from the AST of the fold modules: each comparison
  flipped (``<``/``<=``, ``>``/``>=``, ``==``/``!=``, ``is``/``is not``), ``+``/``-``
  swapped, ``min``/``max`` swapped, ``and``/``or`` swapped, boolean constants
  negated. ``--sample`` picks that many of them at random (``--seed``).

Usage::

    .venv/bin/python bench/mutants.py                    # named + 40 sampled, about 20 min
    .venv/bin/python bench/mutants.py --sample 0 --examples 100
    .venv/bin/python bench/mutants.py --sample 400 --json /tmp/mutants.json   # all of them

Exit code 0 when every mutant was killed, 1 when some survived.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOLD = ("projections/incident.py", "projections/totals.py", "projections/report.py",
        "projections/duty.py", "projections/projector.py")
TESTS = ("tests/unit/test_report_oracle.py", "tests/unit/test_duty_periods.py",
         "tests/contract/test_store_contract.py")


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    """Replace the first occurrence of ``old`` (or, for operator mutants, the whole
    module text ``new``)."""
    line: int = 0

    def apply(self, source: str) -> str:
        if self.line:  # operator mutant: ``new`` is the whole mutated module
            return self.new
        if self.old not in source:
            raise LookupError(f"{self.name}: {self.old!r} not found in {self.path}")
        return source.replace(self.old, self.new, 1)


NAMED = (
    Mutant("arrival from t2 instead of t0", "projections/totals.py",
           "_add_duration(vector, t0, t3, ARRIVAL)",
           "_add_duration(vector, times[2], t3, ARRIVAL)"),
    Mutant("closed never counted", "projections/totals.py",
           "if incident.closed_at is not None:", "if False:"),
    Mutant("grid and area from the latest call", "projections/incident.py",
           ">= (t0, incident.call_event_id", "<= (t0, incident.call_event_id"),
    Mutant("crew: the dispatched one first", "projections/incident.py",
           "return self.arrived_crew if self.arrived_crew is not None else "
           "self.dispatched_crew",
           "return self.dispatched_crew if self.dispatched_crew is not None else "
           "self.arrived_crew"),
    Mutant("> for >= at the period end", "projections/totals.py",
           "t6 >= period_end", "t6 > period_end"),
    Mutant("latest instead of earliest checkpoint", "projections/incident.py",
           "if previous is None or at < previous:", "if previous is None or at > previous:"),
    Mutant("merged incidents counted", "projections/incident.py",
           "return self.rejected_at is None and self.merged_at is None",
           "return self.rejected_at is None"),
    Mutant("24-hour periods in UTC", "projections/duty.py",
           "local = datetime.combine(duty_date, start, tzinfo=ZoneInfo(timezone))",
           "local = datetime.combine(duty_date, start, tzinfo=UTC)"),
)

_SWAP_COMPARE: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}


def operator_mutants(path: str) -> Iterator[Mutant]:
    """One mutant per operator occurrence in the module (docstrings untouched)."""
    source = (REPO / path).read_text(encoding="utf-8")
    tree = ast.parse(source)
    sites: list[tuple[ast.AST, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in _SWAP_COMPARE:
                    sites.append((node, f"cmp:{i}"))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub):
            sites.append((node, "binop"))
        elif isinstance(node, ast.BoolOp):
            sites.append((node, "boolop"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in ("min", "max"):
            sites.append((node, "minmax"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            sites.append((node, "bool"))
    for index, (node, kind) in enumerate(sites):
        mutated = ast.parse(source)
        target = [n for n in ast.walk(mutated)][[n for n in ast.walk(tree)].index(node)]
        before = ast.unparse(target)
        if kind.startswith("cmp:"):
            assert isinstance(target, ast.Compare)
            i = int(kind.split(":")[1])
            target.ops[i] = _SWAP_COMPARE[type(target.ops[i])]()
        elif kind == "binop":
            assert isinstance(target, ast.BinOp)
            target.op = ast.Sub() if isinstance(target.op, ast.Add) else ast.Add()
        elif kind == "boolop":
            assert isinstance(target, ast.BoolOp)
            target.op = ast.Or() if isinstance(target.op, ast.And) else ast.And()
        elif kind == "minmax":
            assert isinstance(target, ast.Call) and isinstance(target.func, ast.Name)
            target.func.id = "max" if target.func.id == "min" else "min"
        else:
            assert isinstance(target, ast.Constant)
            target.value = not target.value
        after = ast.unparse(target)
        line = getattr(node, "lineno", 0) or 1
        yield Mutant(f"#{index} {before}  ->  {after}"[:160], path, "", ast.unparse(mutated),
                     line=line)


def scratch_copy(into: Path) -> Path:
    """The repository's sources (no venv, no git) under ``into``."""
    copy = into / "repo"
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(
        ".venv", ".git", "__pycache__", "*.egg-info", ".mypy_cache", ".ruff_cache"))
    return copy


def run_tests(copy: Path, examples: int, timeout: float) -> tuple[bool, float]:
    """True if the tests fail (the mutant is killed)."""
    killed, seconds, _ = run_tests_output(copy, examples, timeout)
    return killed, seconds


def run_tests_output(copy: Path, examples: int, timeout: float) -> tuple[bool, float, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
    env.update(PYTHONPATH=str(copy), ORACLE_MAX_EXAMPLES=str(examples), ORACLE_NO_SHRINK="1",
               PYTHONDONTWRITEBYTECODE="1")
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-m", "not servers",
             *TESTS],
            cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return True, time.monotonic() - started, "timeout"  # a hang counts as noticed
    return done.returncode != 0, time.monotonic() - started, done.stdout[-3000:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=40,
                        help="operator mutants to try, picked at random (default 40)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--examples", type=int, default=60,
                        help="hypothesis examples per property test (default 60)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per mutant")
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    args = parser.parse_args()

    operators = [m for path in FOLD for m in operator_mutants(path)]
    random.Random(args.seed).shuffle(operators)
    mutants = [*NAMED, *operators[:args.sample]]
    print(f"{len(NAMED)} named and {min(args.sample, len(operators))} of {len(operators)} "
          f"operator mutants; tests: {' '.join(TESTS)} "
          f"(ORACLE_MAX_EXAMPLES={args.examples})", flush=True)
    results: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        copy = scratch_copy(Path(tmp))
        clean, seconds, output = run_tests_output(copy, args.examples, args.timeout)
        if clean:
            print(f"the tests fail without any mutant: fix that first\n{output}",
                  file=sys.stderr)
            return 2
        print(f"unmutated: tests pass in {seconds:.0f}s", flush=True)
        for n, mutant in enumerate(mutants, start=1):
            target = copy / mutant.path
            original = target.read_text(encoding="utf-8")
            try:
                mutated = mutant.apply(original)
            except LookupError as exc:  # the code it mutates has changed: say so
                print(f"[{n}/{len(mutants)}] n/a      {exc}", flush=True)
                results.append({"mutant": mutant.name, "where": mutant.path,
                                "killed": None, "seconds": 0})
                continue
            target.write_text(mutated, encoding="utf-8")
            try:
                killed, seconds = run_tests(copy, args.examples, args.timeout)
            finally:
                target.write_text(original, encoding="utf-8")
            where = f"{mutant.path}:{mutant.line}" if mutant.line else mutant.path
            verdict = "killed" if killed else "SURVIVED"
            print(f"[{n}/{len(mutants)}] {verdict:8} {seconds:5.0f}s  {where}  {mutant.name}",
                  flush=True)
            results.append({"mutant": mutant.name, "where": where, "killed": killed,
                            "seconds": round(seconds, 1)})
    survivors = [r for r in results if r["killed"] is False]
    tried = [r for r in results if r["killed"] is not None]
    print(f"\n{len(tried) - len(survivors)} of {len(tried)} mutants killed; "
          f"{len(survivors)} survived; {len(results) - len(tried)} not applicable")
    for r in survivors:
        print(f"  survived: {r['where']}  {r['mutant']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
