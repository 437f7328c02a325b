"""The pipeline contract: every way of getting events into read models gives the
report of ``dispatch report --input`` byte for byte, also when the process doing
it is SIGKILLed mid-stream and started again.

One class per path: embedded ingest into SQLite, embedded ingest into
PostgreSQL, and Kafka + Faust worker + PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import asyncpg
import pytest

from dispatch.simulation import SimulationPlan, simulate_lines, write_jsonl
from tests.integration.harness import REPO, Stack, dispatch_cmd, embedded_report


def history(folder: Path, days: int, seed: int) -> Path:
    path = folder / "events.jsonl"
    plan = SimulationPlan(seed=seed, start=date(2026, 3, 27), days=days, storm_days=(1,),
                          duplicate_rate=0.03, shuffle=True, late_rate=0.02, skew_rate=0.02,
                          malformed_rate=0.002)
    write_jsonl(simulate_lines(plan), path)
    return path


class PipelineContract:
    days = 6

    def load(self, events: Path, tmp_path: Path) -> str:
        """Run the pipeline to completion; return the report it stores."""
        raise NotImplementedError

    def load_with_kills(self, events: Path, tmp_path: Path, kills: int) -> str:
        raise NotImplementedError

    def test_report_equals_report_from_input(self, tmp_path: Path) -> None:
        events = history(tmp_path, self.days, seed=3)
        assert self.load(events, tmp_path) == embedded_report(events)

    def test_sigkill_and_restart_lose_and_duplicate_nothing(self, tmp_path: Path) -> None:
        events = history(tmp_path, self.days, seed=4)
        assert self.load_with_kills(events, tmp_path, kills=3) == embedded_report(events)


class EmbeddedPipeline(PipelineContract):
    days = 30

    def store_url(self, tmp_path: Path) -> str:
        raise NotImplementedError

    def ingest(self, events: Path, url: str, *extra: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(dispatch_cmd("ingest", str(events), "--store", url, *extra),
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def report(self, url: str) -> str:
        done = subprocess.run(dispatch_cmd("report", "--store", url), cwd=REPO,
                              capture_output=True, text=True, check=True)
        return done.stdout

    def load(self, events: Path, tmp_path: Path) -> str:
        url = self.store_url(tmp_path)
        assert self.ingest(events, url).wait(120) == 0
        return self.report(url)

    def load_with_kills(self, events: Path, tmp_path: Path, kills: int) -> str:
        url = self.store_url(tmp_path)
        total = events.stat().st_size
        rng = random.Random(9)
        for kill in range(kills):
            # Tiny batches: many commits, so the kill lands between and inside them.
            process = self.ingest(events, url, "--batch-size", "5")
            before = self.bytes_done(url)
            target = before + rng.randint(1, total // (4 * kills))
            done = self.wait_for_progress(process, url, target, total,
                                          f"kill {kill + 1} of {kills}")
            process.send_signal(signal.SIGKILL)
            assert process.wait(30) == -signal.SIGKILL
            assert before < done < total, (before, done, total)
        assert self.ingest(events, url).wait(120) == 0
        return self.report(url)

    def wait_for_progress(self, process: subprocess.Popen[bytes], url: str, target: int,
                          total: int, what: str) -> int:
        """Wait until the store's file position is at least ``target`` bytes (and not
        the end); fail if the process ends first or the window never opens."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, f"ingest ended before {what}: lengthen the history"
            done = self.bytes_done(url)
            assert done < total, f"window for {what} closed: the whole file is committed"
            if done >= target:
                return done
            time.sleep(0.02)
        raise AssertionError(f"window for {what} never opened in 60 s")

    def bytes_done(self, url: str) -> int:
        """Bytes of the input committed so far: the stored file position."""
        raise NotImplementedError


POSITION_SQL = "SELECT coalesce(sum(next_position), 0) FROM positions WHERE consumer = 'ingest'"


class TestEmbeddedSqlite(EmbeddedPipeline):
    def store_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'store.db'}"

    def bytes_done(self, url: str) -> int:
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            return 0
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                                    timeout=5)) as conn:
                return int(conn.execute(POSITION_SQL).fetchone()[0])
        except sqlite3.OperationalError:  # the ingest has not created the tables yet
            return 0


@pytest.mark.servers
class TestEmbeddedPostgres(EmbeddedPipeline):
    @pytest.fixture(autouse=True)
    def _dsn(self, pg_dsn: str) -> None:
        self.dsn = pg_dsn

    def store_url(self, tmp_path: Path) -> str:
        return self.dsn

    def bytes_done(self, url: str) -> int:
        async def read() -> int:
            conn = await asyncpg.connect(url)
            try:
                return int(await conn.fetchval(POSITION_SQL))
            except asyncpg.UndefinedTableError:
                return 0
            finally:
                await conn.close()
        return asyncio.run(read())


@pytest.mark.servers
@pytest.mark.slow
class TestKafkaWorkerPostgres(PipelineContract):
    @pytest.fixture(autouse=True)
    def _stack(self, kafka_bootstrap: str, pg_dsn: str) -> Iterator[None]:
        self.stack = Stack(kafka_bootstrap, pg_dsn)
        self.stack.create_topics()
        yield
        self.stack.stop_all()

    def publish(self, events: Path) -> None:
        # As they are, malformed lines included: the worker's dead-letter path counts them.
        self.stack.produce_raw(line for line in events.read_bytes().splitlines()
                               if line.strip())

    def load(self, events: Path, tmp_path: Path) -> str:
        self.publish(events)
        self.stack.start_worker(log=tmp_path / "worker.log")
        self.stack.wait_caught_up()
        return self.stack.report_from_store()

    def load_with_kills(self, events: Path, tmp_path: Path, kills: int) -> str:
        self.publish(events)
        total = self.stack.total()
        rng = random.Random(5)
        for kill in range(kills):
            # One static member name for every restart: the new process takes the
            # partitions over at once instead of waiting for the dead one's session.
            worker = self.stack.start_worker("--batch-size", "50", name="contract-worker",
                                             log=tmp_path / f"worker-{kill}.log")
            progress = self.stack.wait_for_progress(
                worker, total, beyond=rng.randint(1, total // (4 * kills)),
                what=f"kill {kill + 1} of {kills}")
            self.stack.stop_worker(worker, signal.SIGKILL)
            assert worker.process.returncode == -signal.SIGKILL
            assert progress.owned and 0 < progress.committed < total, progress
        self.stack.start_worker(name="contract-worker", log=tmp_path / "worker-last.log")
        self.stack.wait_caught_up()
        return self.stack.report_from_store()
