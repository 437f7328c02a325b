"""``/api/report`` with the CLI report's window options (``from``, ``to``, ``as_of``,
``known_at``) against a real server on SQLite and PostgreSQL: the same bytes as
``dispatch report --store``, every figure against the naive history oracle, 422
naming the field for bad values, and the options in the OpenAPI document."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import history
from tests.api.harness import Server, dispatch, serving
from tests.api.test_api import validate
from tests.api.test_stream import ingest
from tests.history_oracle import close, history_report

# The loaded history covers duty dates 2026-07-01 and 07-02 (tests/api/conftest.py).
WINDOWS: list[dict[str, str]] = [
    {"from": "2026-07-02"},
    {"to": "2026-07-01"},
    {"from": "2026-07-01", "to": "2026-07-01"},
    {"as_of": "2026-07-01T18:00:00+08:00"},
    {"known_at": "2026-07-02T03:30:00+00:00"},
    {"from": "2026-07-02", "to": "2026-07-02", "as_of": "2026-07-02T20:00:00+08:00",
     "known_at": "2026-07-02T12:00:00Z"},
    {"to": "2026-06-01"},  # before the history: an empty report
]

CLI_OPTION = {"from": "--from", "to": "--to", "as_of": "--as-of", "known_at": "--known-at"}


def _cli_args(params: dict[str, str]) -> list[str]:
    return [arg for name, value in params.items() for arg in (CLI_OPTION[name], value)]


@pytest.mark.parametrize("params", WINDOWS,
                         ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()))
def test_windowed_report_is_the_cli_report_and_the_oracles(
        server: Server, loaded: tuple[str, Path], tmp_path: Path, params: dict[str, str]
) -> None:
    store, events = loaded
    with server.client() as client:
        everything = client.get("/api/report").json()
        response = client.get("/api/report", params=params)
        assert response.status_code == 200, response.text
        cli = dispatch("report", "--store", store, "--format", "json", *_cli_args(params),
                       cwd=tmp_path)
        assert cli.returncode == 0, cli.stderr
        assert response.text == cli.stdout
        body = response.json()
        validate(body, "Report", client.get("/openapi.json").json())
        # Cached answers are per question: asking again, and asking for everything,
        # still gives each its own report.
        assert client.get("/api/report", params=params).text == response.text
        assert client.get("/api/report").json() == everything
    assert body["window"] == {
        "from": params.get("from"), "to": params.get("to"),
        "as_of": None if "as_of" not in params else body["window"]["as_of"],
        "known_at": None if "known_at" not in params else body["window"]["known_at"]}
    want = history_report(
        events.read_text(encoding="utf-8").splitlines(), body["duty_timezone"],
        body["duty_start"],
        first=date.fromisoformat(params["from"]) if "from" in params else None,
        last=date.fromisoformat(params["to"]) if "to" in params else None,
        as_of=params.get("as_of"), known_at=params.get("known_at"))
    problems = close(body, want)
    assert not problems, problems[:10]
    if params != {"to": "2026-06-01"}:
        assert body["duty_periods"], "the window should hold some periods"
    assert body != {**everything, "window": body["window"]}, "the window changed nothing"


def test_window_and_calendar_together(server: Server, loaded: tuple[str, Path],
                                      tmp_path: Path) -> None:
    store, _ = loaded
    params = {"duty_timezone": "Europe/Berlin", "duty_start": "06:30", "from": "2026-07-01",
              "to": "2026-07-01", "as_of": "2026-07-02T00:00:00+02:00"}
    with server.client() as client:
        response = client.get("/api/report", params=params)
    cli = dispatch("report", "--store", store, "--duty-timezone", "Europe/Berlin",
                   "--duty-start", "06:30", "--from", "2026-07-01", "--to", "2026-07-01",
                   "--as-of", "2026-07-02T00:00:00+02:00", cwd=tmp_path)
    assert response.status_code == 200
    assert response.text == cli.stdout
    assert [p["duty_date"] for p in response.json()["duty_periods"]] == ["2026-07-01"]


@pytest.mark.parametrize(("params", "field"), [
    ({"from": "2026-13-01"}, "from"), ({"from": "July 1"}, "from"), ({"to": "2026-02-30"}, "to"),
    ({"as_of": "2026-07-01"}, "as_of"), ({"as_of": "2026-07-01T08:00:00"}, "as_of"),
    ({"known_at": "yesterday"}, "known_at"), ({"from": "2026-07-02", "to": "2026-07-01"}, "from"),
    ({"known_at": "2026-07-01T25:00:00Z"}, "known_at"),
    ({"as_of": "9999-12-31T23:59:59-14:00"}, "as_of"),
    ({"known_at": "0001-01-01T00:00:00+14:00"}, "known_at"),
])
def test_bad_window_values_are_422_naming_the_field(
        server: Server, params: dict[str, Any], field: str) -> None:
    with server.client() as client:
        response = client.get("/api/report", params=params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert [f["field"] for f in body["fields"]] == [field]
    assert body["error"].startswith(f"invalid request: {field}: ")


def test_openapi_documents_the_window_options(server: Server) -> None:
    with server.client() as client:
        document = client.get("/openapi.json").json()
    parameters = {p["name"]: p for p in document["paths"]["/api/report"]["get"]["parameters"]}
    assert {"duty_timezone", "duty_start", "from", "to", "as_of", "known_at"} <= set(parameters)
    for name in ("from", "to", "as_of", "known_at"):
        assert parameters[name]["in"] == "query"
        assert parameters[name]["description"]
    window = document["components"]["schemas"]["ReportWindow"]
    assert set(window["properties"]) == {"from", "to", "as_of", "known_at"}


def test_report_answers_are_cached_per_store_state_and_compressed_once(
        store_url: str, tmp_path: Path) -> None:
    first = history(tmp_path / "a.jsonl", seed=1, days=1)
    ingest(store_url, first)

    def cli() -> bytes:
        done = dispatch("report", "--store", store_url, "--format", "json", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done.stdout.encode()

    with serving(store_url, tmp_path) as server, server.client() as client:
        plain = client.get("/api/report", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert plain.content == cli()
        packed = client.get("/api/report", headers={"Accept-Encoding": "gzip"})
        assert packed.headers["content-encoding"] == "gzip"
        assert int(packed.headers["content-length"]) < len(plain.content) / 3
        assert packed.content == plain.content  # httpx decodes it
        tag = plain.headers["etag"]
        assert packed.headers["etag"] == tag
        unchanged = client.get("/api/report", headers={"If-None-Match": tag})
        assert (unchanged.status_code, unchanged.content) == (304, b"")
        # A batch of duplicates only appends no change but moves the counters.
        again = tmp_path / "a-again.jsonl"
        again.write_bytes(first.read_bytes())
        ingest(store_url, again)
        duplicates = client.get("/api/report", headers={"If-None-Match": tag})
        assert duplicates.status_code == 200
        assert duplicates.headers["x-change-seq"] == plain.headers["x-change-seq"]
        assert duplicates.json()["duplicate_events"] > plain.json()["duplicate_events"]
        assert duplicates.content == cli()
        ingest(store_url, history(tmp_path / "b.jsonl", seed=2, days=1,
                                  start=date(2026, 7, 2)))
        newer = client.get("/api/report", headers={"If-None-Match": tag})
        assert newer.status_code == 200
        assert newer.headers["etag"] not in (tag, duplicates.headers["etag"])
        assert int(newer.headers["x-change-seq"]) > int(plain.headers["x-change-seq"])
        assert newer.content == cli()
