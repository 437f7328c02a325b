"""Report renderers: ``json`` is the contract; ``table``, ``csv``, ``markdown`` are for people."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from projections.incident import STAGES
from projections.report import Report

FORMATS = ("json", "table", "csv", "markdown")

_COLUMNS = ("calls", "incidents", "restored", "open_at_handover", "anomalies")


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    rows = [_row(p["duty_date"], p) for p in report["duty_periods"]]
    rows.append(_row("overall", report["overall"]))
    header = ["duty date", "calls", "incidents", "restored", "open", "anomalies",
              *(f"{s} min" for s in STAGES), "avg restoration min"]
    footer = (f"duty periods start {report['duty_start']} {report['duty_timezone']}; "
              f"unattributed {report['unattributed']}, rejected events "
              f"{report['rejected_events']}, duplicate events {report['duplicate_events']}, "
              f"conflicting events {report['conflicting_events']}")
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        return out.getvalue()
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines) + f"\n\n{footer}\n"
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
    body = [line(header), line(["-" * w for w in widths])]
    body += [line(r) for r in rows[:-1]]
    body += [line(["-" * w for w in widths]), line(rows[-1])]
    return "\n".join(body) + f"\n{footer}\n"


def _minutes(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _row(label: str, stats: dict[str, Any]) -> list[str]:
    return [label, *(str(stats[c]) for c in _COLUMNS),
            *(_minutes(stats["stages"][s]["mean_minutes"]) for s in STAGES),
            _minutes(stats["avg_restoration_minutes"])]
