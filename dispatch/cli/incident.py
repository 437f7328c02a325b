"""``dispatch incident ID``: one incident's checkpoints, stage durations and events."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from dispatch import bootstrap
from dispatch.cli.common import UserError, add_store_option, require_store, settings_from
from projections.queries import Timeline, incident_timeline


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "incident", help="show one incident's timeline and stage durations",
        description="Show an incident's six-fast checkpoints (earliest time of each), its "
                    "stage durations in minutes, whether it was rejected or merged, and every "
                    "accepted event for it in event-time order.")
    parser.add_argument("incident_id", metavar="ID")
    add_store_option(parser)
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    require_store(settings)

    async def look_up() -> Timeline | None:
        async with bootstrap.read_model_store(settings) as store:
            return await incident_timeline(store, args.incident_id)

    timeline = asyncio.run(look_up())
    if timeline is None:
        raise UserError(f"no incident {args.incident_id!r} in {settings.store}")
    print(as_json(timeline) if args.format == "json" else as_table(timeline))
    return 0


def as_json(timeline: Timeline) -> str:
    return json.dumps(as_document(timeline), indent=2, ensure_ascii=False)


def as_document(timeline: Timeline) -> dict[str, Any]:
    """The JSON document of one incident (also served by ``/api/incidents/{id}``)."""
    incident = timeline.incident
    return {
        "incident_id": incident.incident_id,
        "outage": incident.is_outage,
        "grid": incident.grid, "area": incident.area, "priority": incident.priority,
        "crew": incident.crew, "merged_into": incident.merged_into,
        "checkpoints": dict(timeline.checkpoints()),
        "stages_minutes": timeline.stage_minutes(),
        "events": [json.loads(e.raw) for e in timeline.events],
    }


def as_table(timeline: Timeline) -> str:
    incident = timeline.incident
    status = "outage" if incident.is_outage else (
        f"merged into {incident.merged_into}" if incident.merged_at is not None else "rejected")
    lines = [f"incident {incident.incident_id} ({status}): grid {incident.grid}, "
             f"area {incident.area}, priority {incident.priority}, crew {incident.crew}", ""]
    stages = timeline.stage_minutes()
    for (name, when), stage in zip(timeline.checkpoints(), [None, *stages], strict=True):
        minutes = stages[stage] if stage else None
        took = "" if minutes is None else f"  (+{minutes:.1f} min {stage})"
        lines.append(f"  {name:<9} {when or '-'}{took}")
    lines += ["", f"events ({len(timeline.events)}):"]
    for event in timeline.events:
        lines.append(f"  {timeline.calendar.format_instant(event.at)}  {event.type:<17} "
                     f"{event.event_id}")
    return "\n".join(lines)
