"""Several ``dispatch ingest`` processes writing one store at the same time.

Every process's read-modify-write (known event ids, stored incidents, the file
position) must be serialised with the others' commits, so whatever the
interleaving the store ends with exactly the report of ``report --input`` over
all the files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.cli import (
    report_from_input,
    report_from_store,
    simulated,
    split_round_robin,
    start,
)


def ingest_at_once(url: str, files: list[Path], *extra: str) -> None:
    processes = [start("ingest", str(path), "--store", url, *extra) for path in files]
    errors = [process.communicate(timeout=300)[1] for process in processes]
    for process, err in zip(processes, errors, strict=True):
        assert process.returncode == 0, err
        assert "Traceback" not in err, err


class ConcurrentIngest:
    def url(self, tmp_path: Path) -> str:
        raise NotImplementedError

    def test_files_sharing_incidents_give_the_report_of_all_files(self, tmp_path: Path) -> None:
        lines = simulated(tmp_path / "all.jsonl", days=6, seed=21)
        files = split_round_robin(lines, tmp_path, parts=4)
        url = self.url(tmp_path)
        # Small batches: many interleaved read-modify-write cycles.
        ingest_at_once(url, files, "--batch-size", "50")
        assert report_from_store(url) == report_from_input(*files)

    def test_the_same_file_twice_at_once_counts_it_once(self, tmp_path: Path) -> None:
        path = tmp_path / "all.jsonl"
        simulated(path, days=3, seed=22)
        url = self.url(tmp_path)
        ingest_at_once(url, [path, path, path], "--batch-size", "40")
        assert report_from_store(url) == report_from_input(path)


class TestSqlite(ConcurrentIngest):
    def url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'store.db'}"

    def test_many_processes_creating_a_new_store_at_once(self, tmp_path: Path) -> None:
        path = tmp_path / "all.jsonl"
        simulated(path, days=1, seed=23)
        for attempt in range(3):
            url = f"sqlite:///{tmp_path / f'fresh{attempt}.db'}"
            ingest_at_once(url, [path] * 6)
            assert report_from_store(url) == report_from_input(path)


@pytest.mark.servers
class TestPostgres(ConcurrentIngest):
    @pytest.fixture(autouse=True)
    def _dsn(self, pg_dsn: str) -> None:
        self.dsn = pg_dsn

    def url(self, tmp_path: Path) -> str:
        return self.dsn

    def test_many_processes_creating_a_new_store_at_once(self, tmp_path: Path) -> None:
        path = tmp_path / "all.jsonl"
        simulated(path, days=1, seed=23)
        ingest_at_once(self.dsn, [path] * 4)
        assert report_from_store(self.dsn) == report_from_input(path)
