"""The command under a user's shell: Ctrl-C, kill -9, closed and broken pipes, bad
store paths and bad option values. One line on stderr and the documented exit
code, never a traceback; nothing half-done and no process left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.reliability.cli import (
    command,
    environment,
    ok,
    one_line_failure,
    report_from_input,
    report_from_store,
    run,
    simulated,
)

BIG_DAYS = 90
"""Enough simulated days for an input over 8 MB (parsed by worker processes)."""


@pytest.fixture(scope="module")
def big_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.jsonl"
    simulated(path, days=BIG_DAYS, seed=31, duplicates=0.01)
    assert path.stat().st_size > 8 << 20
    return path


def live_processes(session: int) -> list[str]:
    """Processes of ``session`` still running (zombies waiting to be reaped are dead)."""
    listing = subprocess.run(["ps", "-o", "pid=,stat=,args=", "-s", str(session)],
                             capture_output=True, text=True, check=False).stdout
    return [line for line in listing.splitlines() if line.split()[1][0] != "Z"]


def start_ingest(big_input: Path, store: str) -> subprocess.Popen[str]:
    # Its own session, like a job started from a terminal: signals can go to the group.
    return subprocess.Popen(command("ingest", str(big_input), "--store", store,
                                    "--batch-size", "2000"),
                            env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def wait_for_progress(store_path: Path, process: subprocess.Popen[str]) -> None:
    """Until the ingest committed a first batch (so the signal lands mid-ingest)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if store_path.exists() and report_has_incidents(store_path):
            return
        time.sleep(0.1)
    raise AssertionError("no batch committed in 60 s")


def report_has_incidents(store_path: Path) -> bool:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{store_path}?mode=ro", uri=True) as db:
            return bool(db.execute("SELECT count(*) FROM incidents").fetchone()[0])
    except sqlite3.Error:
        return False


@pytest.mark.parametrize("to", ["group", "process"])
def test_ctrl_c_stops_within_a_second_and_resumes_exactly(
        tmp_path: Path, big_input: Path, to: str) -> None:
    store_path = tmp_path / "s.db"
    store = f"sqlite:///{store_path}"
    process = start_ingest(big_input, store)
    wait_for_progress(store_path, process)
    assert len(live_processes(process.pid)) >= 3, "parse workers should be running"
    sent = time.monotonic()
    if to == "group":  # what a terminal does
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # leave nothing behind, then fail
        process.communicate()
        raise
    took = time.monotonic() - sent
    assert process.returncode == 130, err
    assert took < 1.0, f"took {took:.2f}s to stop"
    assert "Traceback" not in err and "BrokenProcessPool" not in err, err
    assert len(err.strip().splitlines()) == 1 and "interrupted" in err, err
    time.sleep(0.5)
    assert live_processes(process.pid) == []
    # Nothing half-done: running it again completes the store exactly.
    assert report_has_incidents(store_path)
    ok(run("ingest", str(big_input), "--store", store))
    assert report_from_store(store) == report_from_input(big_input)


def session_tree(session: int) -> list[tuple[int, int, str]]:
    """(pid, parent pid, command line) of the live processes of ``session``."""
    listing = subprocess.run(["ps", "-ww", "-o", "pid=,ppid=,stat=,args=", "-s", str(session)],
                             capture_output=True, text=True, check=False).stdout
    rows = []
    for line in listing.splitlines():
        pid, ppid, stat, args = [*line.split(None, 3), ""][:4]
        if stat[0] != "Z":
            rows.append((int(pid), int(ppid), args))
    return rows


def has_parse_code(pid: int) -> bool:
    """Whether process ``pid`` has loaded the validation code (pydantic-core's library
    is mapped): a parse worker is ready once it has; a starting one is importing."""
    try:
        return "pydantic_core" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def starting_window(process: subprocess.Popen[str]) -> str | None:
    """Wait until the ingest's parse workers are started (forked by the pool's server)
    but not all ready; a description of what was seen then, or None if the window
    never opened (all ready at first sight, or the ingest ended)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        tree = session_tree(process.pid)
        servers = [pid for pid, ppid, args in tree
                   if ppid == process.pid and "forkserver" in args]
        workers = [pid for pid, ppid, _ in tree if servers and ppid == servers[0]]
        if workers:
            if has_parse_code(servers[0]):
                return None  # the server preloaded the code: readiness cannot be told
            ready = [has_parse_code(pid) for pid in workers]
            if all(ready):
                return None
            return f"{len(workers)} worker(s) started, {sum(ready)} ready"
        time.sleep(0.005)
    return None


def test_ctrl_c_while_the_parse_workers_start(tmp_path: Path, big_input: Path) -> None:
    """Ctrl-C (to the process group, as a terminal sends it) in the second or two in
    which the parse workers are still importing: the same promises as later on."""
    store_path = tmp_path / "s.db"
    store = f"sqlite:///{store_path}"
    for _attempt in range(5):
        store_path.unlink(missing_ok=True)
        process = start_ingest(big_input, store)
        seen = starting_window(process)
        if seen is not None:
            break
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
    else:
        raise AssertionError("the parse workers were never caught starting in 5 attempts")
    sent = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # leave nothing behind, then fail
        process.communicate()
        raise
    took = time.monotonic() - sent
    assert process.returncode == 130, (seen, err)
    assert "Traceback" not in err and "Error" not in err, (seen, err)
    assert len(err.strip().splitlines()) == 1 and "interrupted" in err, (seen, err)
    assert took < 1.0, f"took {took:.2f}s to stop ({seen})"
    time.sleep(0.5)
    assert live_processes(process.pid) == [], seen
    # Nothing half-done: an ingest after it gives exactly the report of the file.
    ok(run("ingest", str(big_input), "--store", store))
    assert report_from_store(store) == report_from_input(big_input)


def test_kill_9_leaves_no_parse_workers_behind(tmp_path: Path, big_input: Path) -> None:
    store_path = tmp_path / "s.db"
    process = start_ingest(big_input, f"sqlite:///{store_path}")
    wait_for_progress(store_path, process)
    assert len(live_processes(process.pid)) >= 3, "parse workers should be running"
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    deadline = time.monotonic() + 5
    while live_processes(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = live_processes(process.pid)
    if left:
        os.killpg(process.pid, signal.SIGKILL)  # leave nothing behind, then fail
    assert left == []


# -- store paths -----------------------------------------------------------------------------

def small_input(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text('{"event_id": "e1", "type": "call.received", "incident_id": "I1", '
                    '"occurred_at": "2026-07-01T09:00:00+08:00", '
                    '"data": {"grid": "G", "area": "urban"}}\n', encoding="utf-8")
    return path


def as_unprivileged(args: list[str]) -> list[str]:
    """Without the power to ignore file permissions (root has it; tests often run as root)."""
    if os.geteuid() != 0:
        return args
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *args]


@pytest.mark.parametrize("command_name", ["ingest", "report"])
def test_a_store_that_is_a_directory(tmp_path: Path, command_name: str) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    where = [str(small_input(tmp_path))] if command_name == "ingest" else []
    line = one_line_failure(run(command_name, *where, "--store", f"sqlite:///{folder}"))
    assert str(folder) in line


@pytest.mark.parametrize("command_name", ["ingest", "report", "incident"])
def test_a_store_that_is_not_sqlite(tmp_path: Path, command_name: str) -> None:
    store = tmp_path / "notes.db"
    store.write_text("shopping list\n" * 100, encoding="utf-8")
    where = {"ingest": [str(small_input(tmp_path))], "report": [], "incident": ["I1"]}
    line = one_line_failure(run(command_name, *where[command_name],
                                "--store", f"sqlite:///{store}"))
    assert "not a dispatch store" in line
    assert store.read_text(encoding="utf-8") == "shopping list\n" * 100


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_read_only_store(tmp_path: Path, what: str) -> None:
    folder = tmp_path / "stores"
    folder.mkdir()
    store = folder / "s.db"
    events = small_input(tmp_path)
    ok(run("ingest", str(events), "--store", f"sqlite:///{store}"))
    before = store.read_bytes()
    (store if what == "file" else folder).chmod(0o444 if what == "file" else 0o555)
    try:
        result = subprocess.run(
            as_unprivileged(command("ingest", str(events), "--from-start",
                                    "--store", f"sqlite:///{store}")),
            env=environment(), capture_output=True, text=True, timeout=120, check=False)
    finally:
        store.chmod(0o644)
        folder.chmod(0o755)
    line = one_line_failure(result)
    assert "read-only" in line or "cannot be opened" in line, line
    assert store.read_bytes() == before


# -- pipes ------------------------------------------------------------------------------------

def test_report_with_stdout_closed(tmp_path: Path) -> None:
    events = small_input(tmp_path)
    result = subprocess.run(command("report", "--input", str(events)), env=environment(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            timeout=120, check=False,
                            preexec_fn=lambda: os.close(1))
    line = one_line_failure(result)
    assert "standard output is closed" in line


@pytest.mark.parametrize("args", [["incident", "I1"], ["report", "--format", "table"]])
def test_a_reader_that_goes_away_is_not_a_failure(tmp_path: Path, args: list[str]) -> None:
    events = small_input(tmp_path)
    store = f"sqlite:///{tmp_path / 's.db'}"
    ok(run("ingest", str(events), "--store", store))
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head -1` after its line: every write now fails with EPIPE
    try:
        result = subprocess.run(command(*args, "--store", store), env=environment(),
                                stdout=write_end, stderr=subprocess.PIPE, text=True,
                                timeout=120, check=False)
    finally:
        os.close(write_end)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


# -- option values ------------------------------------------------------------------------------

@pytest.mark.parametrize("option", [["--duty-timezone", "Mars/Olympus"],
                                    ["--duty-start", "25:99"], ["--batch-size", "0"],
                                    ["--batch-size", "-5"]])
def test_bad_option_values_are_bad_usage(tmp_path: Path, option: list[str]) -> None:
    events = small_input(tmp_path)
    line = one_line_failure(run("ingest", str(events), "--store",
                                f"sqlite:///{tmp_path / 's.db'}", *option), code=2)
    assert option[1] in line or "at least 1" in line, line
    assert not (tmp_path / "s.db").exists()
