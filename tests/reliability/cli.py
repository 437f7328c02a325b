"""Running the real ``dispatch`` command for the reliability tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

from dispatch.simulation import SimulationPlan, simulate_lines, write_jsonl

REPO = Path(__file__).resolve().parents[2]


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dispatch.cli", *args]


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra or {})
    return env


def run(*args: str, cwd: Path | None = None, timeout: float = 300,
        env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(*args), cwd=cwd or REPO, env=environment(env),
                          capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


def start(*args: str, cwd: Path | None = None, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(command(*args), cwd=cwd or REPO, env=environment(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result


def one_line_failure(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """A clean failure: the exit code, exactly one line on stderr, no traceback."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def report_from_store(url: str) -> dict[str, Any]:
    return json.loads(ok(run("report", "--store", url, "--format", "json")).stdout)


def report_from_input(*paths: Path) -> dict[str, Any]:
    return json.loads(ok(run("report", "--input", *map(str, paths), "--format", "json")).stdout)


def simulated(path: Path, days: int, seed: int, duplicates: float = 0.03) -> list[bytes]:
    """A shuffled history with duplicates and late events; its lines."""
    plan = SimulationPlan(seed=seed, start=date(2026, 3, 27), days=days,
                          storm_days=(min(1, days - 1),), duplicate_rate=duplicates,
                          shuffle=True, late_rate=0.02, skew_rate=0.02)
    write_jsonl(simulate_lines(plan), path)
    return path.read_bytes().splitlines(keepends=True)


def split_round_robin(lines: list[bytes], folder: Path, parts: int) -> list[Path]:
    """``parts`` files that share incident ids (line i goes to file i mod parts)."""
    paths = []
    for k in range(parts):
        path = folder / f"part{k}.jsonl"
        path.write_bytes(b"".join(lines[k::parts]))
        paths.append(path)
    return paths
