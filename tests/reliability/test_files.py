"""Input files in the states real producers leave them in: a last line still being
written, a file rewritten in place, an ``event_id`` reused with other content."""

from __future__ import annotations

import json
from pathlib import Path

from tests.reliability.cli import ok, report_from_input, report_from_store, run

CALL = ('{{"event_id": "{id}", "type": "call.received", "incident_id": "{inc}", '
        '"occurred_at": "{at}", "data": {{"grid": "G1", "area": "{area}"}}}}')
RESTORED = ('{{"event_id": "{id}", "type": "power.restored", "incident_id": "{inc}", '
            '"occurred_at": "{at}", "data": {{}}}}')


def call(event_id: str, incident: str, at: str = "2026-07-01T09:00:00+08:00",
         area: str = "urban") -> str:
    return CALL.format(id=event_id, inc=incident, at=at, area=area)


def restored(event_id: str, incident: str, at: str = "2026-07-01T11:00:00+08:00") -> str:
    return RESTORED.format(id=event_id, inc=incident, at=at)


def ingest(path: Path, store: str, *extra: str) -> str:
    return ok(run("ingest", str(path), "--store", store, *extra)).stderr


# -- a last line still being written -------------------------------------------------------

def test_a_half_written_last_line_is_read_once_finished(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    store = f"sqlite:///{tmp_path / 's.db'}"
    last = restored("e2", "INC-1")
    path.write_text(call("e1", "INC-1") + "\n" + last[:40], encoding="utf-8")
    stderr = ingest(path, store)
    assert "rejected" not in stderr.split("accepted")[-1] or " 0 rejected" in stderr, stderr
    assert "live.jsonl:2" in stderr and "left unread" in stderr, stderr
    with path.open("a", encoding="utf-8") as stream:
        stream.write(last[40:] + "\n")
    ingest(path, store)
    report = report_from_store(store)
    assert report["rejected_events"] == 0
    assert report["overall"]["restored"] == 1
    assert report == report_from_input(path)


def test_a_complete_last_line_without_newline_is_read(tmp_path: Path) -> None:
    path = tmp_path / "hand.jsonl"
    store = f"sqlite:///{tmp_path / 's.db'}"
    path.write_text(call("e1", "INC-1") + "\n" + restored("e2", "INC-1"), encoding="utf-8")
    ingest(path, store)
    assert report_from_store(store)["overall"]["restored"] == 1
    with path.open("a", encoding="utf-8") as stream:
        stream.write("\n" + call("e3", "INC-2") + "\n")
    ingest(path, store)
    report = report_from_store(store)
    assert report["overall"]["incidents"] == 2 and report["duplicate_events"] == 0
    assert report == report_from_input(path)


# -- a file rewritten in place ---------------------------------------------------------------

def test_a_file_rewritten_shorter_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "day.jsonl"
    store = f"sqlite:///{tmp_path / 's.db'}"
    first = call("e1", "INC-1")
    path.write_text("\n".join([first, call("e2", "INC-2"), call("e3", "INC-3"),
                               restored("e4", "INC-3")]) + "\n", encoding="utf-8")
    ingest(path, store)
    # Same path, same first line, shorter: a new incident the old offset would skip.
    path.write_text("\n".join([first, call("e5", "INC-5")]) + "\n", encoding="utf-8")
    stderr = ingest(path, store)
    assert "rewritten" in stderr, stderr
    report = report_from_store(store)
    assert report["overall"]["incidents"] == 4, report["overall"]
    assert report["duplicate_events"] == 1  # e1, read again


def test_a_file_rewritten_longer_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "day.jsonl"
    store = f"sqlite:///{tmp_path / 's.db'}"
    first = call("e1", "INC-1")
    path.write_text(first + "\n" + call("e2", "INC-2") + "\n", encoding="utf-8")
    ingest(path, store)
    # Same first line, the second replaced by a longer one, and more after it.
    path.write_text("\n".join([first, call("e6", "INC-6", area="remote"),
                               restored("e7", "INC-6"), call("e8", "INC-8")]) + "\n",
                    encoding="utf-8")
    stderr = ingest(path, store)
    assert "rewritten" in stderr, stderr
    report = report_from_store(store)
    assert report["overall"]["incidents"] == 4 and report["overall"]["restored"] == 1
    assert report["duplicate_events"] == 1


def test_appending_still_resumes_without_reading_again(tmp_path: Path) -> None:
    path = tmp_path / "day.jsonl"
    store = f"sqlite:///{tmp_path / 's.db'}"
    path.write_text(call("e1", "INC-1") + "\n", encoding="utf-8")
    ingest(path, store)
    with path.open("a", encoding="utf-8") as stream:
        stream.write(call("e2", "INC-2") + "\n")
    stderr = ingest(path, store)
    assert "rewritten" not in stderr and "resumed after" in stderr, stderr
    assert report_from_store(store)["duplicate_events"] == 0


# -- an event_id reused with other content ----------------------------------------------------

def conflict_rows(rejects: Path) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    return [row for row in rows if "conflict" in row["reason"]]


def test_a_reused_event_id_with_other_content_is_a_conflict(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    rejects = tmp_path / "rejects.jsonl"
    store = f"sqlite:///{tmp_path / 's.db'}"
    same_event_other_text = json.dumps(json.loads(call("e1", "INC-1")), indent=None,
                                       separators=(",", ":"))
    path.write_text("\n".join([
        call("e1", "INC-1"),
        same_event_other_text,                       # a duplicate: same event, other bytes
        call("e1", "INC-1", area="rural"),           # a conflict: other content
        restored("e2", "INC-1"),
    ]) + "\n", encoding="utf-8")
    stderr = ingest(path, store, "--rejects", str(rejects))
    assert "conflict" in stderr, stderr
    rows = conflict_rows(rejects)
    assert [row["where"] for row in rows] == ["in.jsonl:3"]
    assert "data.area" in rows[0]["reason"]
    report = report_from_store(store)
    assert report["conflicting_events"] == 1
    assert report["duplicate_events"] == 1
    assert report["rejected_events"] == 0
    assert report["breakdowns"]["area"].keys() == {"urban"}  # the first copy stands
    assert report == report_from_input(path)


def test_a_conflict_with_an_event_already_stored(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 's.db'}"
    first = tmp_path / "first.jsonl"
    later = tmp_path / "later.jsonl"
    rejects = tmp_path / "rejects.jsonl"
    first.write_text(call("e1", "INC-1") + "\n", encoding="utf-8")
    later.write_text(call("e1", "INC-1", at="2026-07-01T08:00:00+08:00") + "\n"
                     + call("e1", "INC-1") + "\n", encoding="utf-8")
    ingest(first, store)
    ingest(later, store, "--rejects", str(rejects))
    assert [row["where"] for row in conflict_rows(rejects)] == ["later.jsonl:1"]
    report = report_from_store(store)
    assert (report["conflicting_events"], report["duplicate_events"]) == (1, 1)
    assert report["duty_periods"][0]["duty_date"] == "2026-07-01"
    assert report == report_from_input(first, later)
