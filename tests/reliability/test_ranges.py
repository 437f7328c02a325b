"""Values the contract allows on paper but no store or clock holds: refused with a
reason, never a crash, and never a store that every later run trips over."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.reliability.cli import ok, report_from_input, report_from_store, run

GOOD = ('{"event_id": "ok", "type": "call.received", "incident_id": "INC-OK", '
        '"occurred_at": "2026-07-01T09:00:00+08:00", "data": {"grid": "G", "area": "urban"}}')


def event(event_id: str, at: str = "2026-07-01T09:00:00+08:00", data: str = "",
          envelope: str = "", kind: str = "call.received") -> str:
    payload = '"grid": "G", "area": "urban"' if kind == "call.received" else '"crew": "C1"'
    if kind == "incident.closed":
        payload = ""
    extra = f", {data}" if data and payload else data
    return (f'{{"event_id": "{event_id}", "type": "{kind}", "incident_id": "INC-{event_id}", '
            f'"occurred_at": "{at}"{envelope}, "data": {{{payload}{extra}}}}}')


HOSTILE = {
    "year 9999": (event("y9999", at="9999-12-31T23:59:59Z"), "out of range"),
    "year 0001": (event("y0001", at="0001-01-01T00:00:00+01:00"), "out of range"),
    "before 1970": (event("y1969", at="1969-12-31T23:59:59Z"), "out of range"),
    "year 2200": (event("y2200", at="2200-01-01T00:00:00Z"), "out of range"),
    "recorded in 9999": (event("r9999", envelope=', "recorded_at": "9999-01-01T00:00:00Z"'),
                         "out of range"),
    "count 2^63": (event("c63", data='"customers_affected": 9223372036854775808'),
                   "out of range"),
    "count 2^53": (event("c53", data='"customers_affected": 9007199254740992'),
                   "out of range"),
    "count as string": (event("cs", data='"customers_affected": "5"'), "integer"),
    "count as bool": (event("cb", data='"customers_affected": true'), "integer"),
    "count as fraction": (event("cf", data='"customers_affected": 5.5'), "integer"),
    "eta as string": (event("es", kind="crew.dispatched", data='"eta_minutes": "5"'),
                      "number"),
    "eta NaN": (event("en", kind="crew.dispatched", data='"eta_minutes": NaN'), "JSON"),
    "satisfied as 1": (event("s1", kind="incident.closed", data='"satisfied": 1'), "boolean"),
    "NaN extra": (event("nx", data='"x": NaN'), "finite"),
    "Infinity extra": (event("ix", envelope=', "extra": [1, -Infinity]'), "finite"),
    "huge number extra": (event("hx", data='"x": {"y": 1e400}'), "finite"),
    "schema_version true": (event("sv", envelope=', "schema_version": true'), "integer"),
    # PostgreSQL text cannot hold U+0000: accepted, it used to stop a PostgreSQL ingest
    "NUL in an agent": (event("ng", data='"agent": "A\\u0000"'), "NUL"),
    "NUL in an id": (event("n\\u0000i"), "NUL"),
    "NUL in an extra key": (event("nk", envelope=', "x\\u0000": 1'), "NUL"),
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.servers)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 's.db'}"
    dsn: str = request.getfixturevalue("pg_dsn")
    return dsn


def test_out_of_range_values_are_rejected_with_a_reason(tmp_path: Path, store_url: str) -> None:
    names = sorted(HOSTILE)
    path = tmp_path / "in.jsonl"
    rejects = tmp_path / "rejects.jsonl"
    path.write_text(GOOD + "\n" + "".join(HOSTILE[n][0] + "\n" for n in names),
                    encoding="utf-8")
    store = store_url
    ok(run("ingest", str(path), "--store", store, "--rejects", str(rejects)))
    rows = [json.loads(r) for r in rejects.read_text(encoding="utf-8").splitlines()]
    assert [row["where"] for row in rows] == [f"in.jsonl:{i}" for i in range(2, len(names) + 2)]
    for name, row in zip(names, rows, strict=True):
        assert HOSTILE[name][1] in row["reason"], (name, row["reason"])
    report = report_from_store(store)
    assert report["rejected_events"] == len(names) and report["overall"]["incidents"] == 1
    assert report == report_from_input(path)
    # The store is not blocked: a later ingest of more lines works.
    more = tmp_path / "more.jsonl"
    more.write_text(GOOD.replace('"ok"', '"ok2"').replace("INC-OK", "INC-OK2") + "\n",
                    encoding="utf-8")
    ok(run("ingest", str(more), "--store", store))
    assert report_from_store(store)["overall"]["incidents"] == 2


def test_the_edges_of_the_ranges_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join([
        event("lo", at="1970-01-01T00:00:00Z", data='"customers_affected": 0'),
        event("hi", at="2199-12-31T23:59:59.999999Z",
              data='"customers_affected": 9007199254740991'),
    ]) + "\n", encoding="utf-8")
    store = f"sqlite:///{tmp_path / 's.db'}"
    ok(run("ingest", str(path), "--store", store))
    report = report_from_store(store)
    assert report["rejected_events"] == 0 and report["overall"]["incidents"] == 2
    assert report == report_from_input(path)
    shown = ok(run("incident", "INC-hi", "--store", store, "--format", "json")).stdout
    assert json.loads(shown)["events"][0]["data"]["customers_affected"] == 2**53 - 1
