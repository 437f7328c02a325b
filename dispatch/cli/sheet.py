"""Rendering a handover sheet: ``json`` for programs, ``table`` to print and sign,
``markdown`` to paste into a ticket."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from projections.incident import STAGES

SHEET_FORMATS = ("table", "markdown", "json")

SLA_COLUMNS = ("met", "late", "breach", "warning", "ok", "anomaly")
SLA_HEADERS = ("met", "late", "breached", "warning", "on time so far", "anomaly")


def render_sheet(sheet: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(sheet, indent=2, ensure_ascii=False) + "\n"
    if fmt == "markdown":
        return _markdown(sheet)
    return _table(sheet)


def _minutes(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _share(part: int, whole: int) -> str:
    return f"{part} ({part / whole:.0%})" if whole else str(part)


def _local(text: str) -> str:
    """``2026-07-02T08:30:00+08:00`` -> ``2026-07-02 08:30``."""
    return text[:16].replace("T", " ")


def _when(sheet: dict[str, Any]) -> str:
    return (f"{_local(sheet['start'])} to {_local(sheet['end'])} "
            f"({sheet['duty_timezone']})")


def _team_line(sheet: dict[str, Any]) -> tuple[str, str]:
    acc = sheet["accountability"]
    return acc["team"] or "(no shift start recorded)", acc["leader"] or "-"


def _shift_lines(sheet: dict[str, Any]) -> list[str]:
    lines = []
    for shift in sheet["shifts"]:
        members = f", members {', '.join(shift['members'])}" if shift["members"] else ""
        lines.append(f"{_local(shift['at'])} {shift['team']} (leader {shift['leader']}"
                     f"{members})")
    return lines


def _kpi_rows(sheet: dict[str, Any]) -> tuple[list[str], list[str]]:
    header = ["calls", "incidents", "restored", "open at handover", "anomalies",
              "avg restoration min"]
    row = [str(sheet["calls"]), str(sheet["incidents"]), str(sheet["restored"]),
           str(sheet["open_at_handover"]), str(sheet["anomalies"]),
           _minutes(sheet["avg_restoration_minutes"])]
    return header, row


def _stage_rows(sheet: dict[str, Any]) -> list[list[str]]:
    return [[stage, str(sheet["stages"][stage]["count"]),
             _minutes(sheet["stages"][stage]["mean_minutes"])] for stage in STAGES]


def _sla_rows(sheet: dict[str, Any]) -> list[list[str]]:
    sla = sheet["accountability"]["sla"]
    return [[rule, *(str(sla[rule][state]) for state in SLA_COLUMNS)] for rule in sla]


def _callback_text(sheet: dict[str, Any]) -> str:
    cb = sheet["accountability"]["callbacks"]
    restored = cb["restored"]
    return (f"restored {restored}, called back {_share(cb['called_back'], restored)}, "
            f"reached {_share(cb['reached'], restored)}, satisfied "
            f"{_share(cb['satisfied'], restored)}, dissatisfied "
            f"{_share(cb['dissatisfied'], restored)}")


def _fix_text(sheet: dict[str, Any]) -> str:
    share = sheet["accountability"]["first_visit_fix"]
    if share is None:
        return "- (no restored incident with a crew on site)"
    return f"{share:.1%} of restored incidents fixed by the first crew on site"


def _agent_rows(sheet: dict[str, Any]) -> list[list[str]]:
    return [[a["agent"] or "(no agent)", str(a["incidents_owned"]), str(a["restored"]),
             _minutes(a["avg_restoration_minutes"])]
            for a in sheet["accountability"]["agents"]]


def _handover_rows(sheet: dict[str, Any]) -> list[list[str]]:
    return [[str(n), h["incident_id"], h["owner"] or "-", h["grid"] or "-", h["area"] or "-",
             h["priority"] or "-", h["last_checkpoint"], f"{h['minutes_open']:.0f}"]
            for n, h in enumerate(sheet["accountability"]["handover"], start=1)]


AGENT_HEADER = ["agent", "owned", "restored", "avg restoration min"]
HANDOVER_HEADER = ["#", "incident", "owner", "grid", "area", "priority", "last checkpoint",
                   "open min"]
STAGE_HEADER = ["stage", "count", "mean min"]
SLA_HEADER = ["rule", *SLA_HEADERS]
KPI_ALIGN = "rrrrrr"
HANDOVER_ALIGN = "rllllllr"


# -- markdown --------------------------------------------------------------------------

def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """``align``: one letter per column, ``l`` (text) or ``r`` (numbers)."""
    marks = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
             "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def _markdown(sheet: dict[str, Any]) -> str:
    team, leader = _team_line(sheet)
    out = [f"### Duty handover {sheet['duty_date']}", "",
           f"**Period:** {_when(sheet)}  ",
           f"**Team on duty:** {_md_cell(team)}  ",
           f"**Leader:** {_md_cell(leader)}"]
    shifts = _shift_lines(sheet)
    if len(shifts) > 1:
        out += ["", "**Shift starts:**", *(f"- {_md_cell(line)}" for line in shifts)]
    header, row = _kpi_rows(sheet)
    out += ["", "#### Figures", "", *_md_table(header, [row], KPI_ALIGN)]
    out += ["", *_md_table(STAGE_HEADER, _stage_rows(sheet), "lrr")]
    out += ["", "#### Time limits at the end of the period", "",
            *_md_table(SLA_HEADER, _sla_rows(sheet), "lrrrrrr")]
    out += ["", "#### Callbacks and first visit", "",
            f"- Callbacks: {_callback_text(sheet)}",
            f"- First-visit fix: {_fix_text(sheet)}"]
    agents = _agent_rows(sheet)
    out += ["", "#### Ownership (first contact)", ""]
    out += _md_table(AGENT_HEADER, agents, "lrrr") if agents else ["No incidents."]
    handover = _handover_rows(sheet)
    out += ["", f"#### Handed over still open ({len(handover)})", ""]
    out += _md_table(HANDOVER_HEADER, handover, HANDOVER_ALIGN) if handover else ["Nothing open."]
    out += ["", "Handed over by: ____________  Taken over by: ____________", ""]
    return "\n".join(out)


# -- plain table -----------------------------------------------------------------------

def _text_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if a == "l" else c.rjust(w)
                         for c, w, a in zip(cells, widths, align, strict=True)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _table(sheet: dict[str, Any]) -> str:
    team, leader = _team_line(sheet)
    title = f"DUTY HANDOVER SHEET  {sheet['duty_date']}"
    out = [title, "=" * len(title),
           f"Period:  {_when(sheet)}",
           f"Team:    {team}",
           f"Leader:  {leader}"]
    shifts = _shift_lines(sheet)
    if len(shifts) > 1:
        out += ["Shifts:  " + shifts[0], *("         " + s for s in shifts[1:])]
    header, row = _kpi_rows(sheet)
    out += ["", *_text_table(header, [row], KPI_ALIGN)]
    out += ["", *_text_table(STAGE_HEADER, _stage_rows(sheet), "lrr")]
    out += ["", "Time limits at the end of the period",
            *_text_table(SLA_HEADER, _sla_rows(sheet), "lrrrrrr")]
    out += ["", f"Callbacks:        {_callback_text(sheet)}",
            f"First-visit fix:  {_fix_text(sheet)}"]
    agents = _agent_rows(sheet)
    out += ["", "Ownership (first contact)"]
    out += _text_table(AGENT_HEADER, agents, "lrrr") if agents else ["  no incidents"]
    handover = _handover_rows(sheet)
    out += ["", f"Handed over still open: {len(handover)}"]
    if handover:
        out += _text_table(HANDOVER_HEADER, handover, HANDOVER_ALIGN)
    out += ["", "Handed over by: ____________    Taken over by: ____________", ""]
    return "\n".join(out)
