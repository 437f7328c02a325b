"""Which available crew to send: a replaceable, pure ranking.

Contract of ``rank``: only ``available`` crews are ranked, best first, by
1. same grid as the incident, 2. having the call's ``required_skill`` (when
the call names one), 3. fewest incidents arrived at in the current duty period,
4. crew id. Each recommendation carries a ``score`` that orders the same way
(higher is better) and the human-readable ``reasons`` behind it. It knows
nothing of travel times or shift calendars: a real deployment would rank by
travel time from the crews' positions and by who is on shift.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from projections.crews import CrewState


@dataclass(frozen=True, slots=True)
class Recommendation:
    crew: str
    grid: str
    skills: tuple[str, ...]
    score: int
    reasons: tuple[str, ...]

    def as_document(self) -> dict[str, Any]:
        return {"crew": self.crew, "grid": self.grid, "skills": list(self.skills),
                "score": self.score, "reasons": list(self.reasons)}


def rank(grid: str | None, required_skill: str | None, crews: Iterable[CrewState],
         arrivals: Mapping[str, int]) -> list[Recommendation]:
    """The available ``crews`` ranked for an incident on ``grid`` (module contract)."""
    ranked = []
    for crew in crews:
        if crew.status != "available":
            continue
        same_grid = grid is not None and crew.grid == grid
        has_skill = required_skill is not None and required_skill in crew.skills
        load = arrivals.get(crew.crew, 0)
        reasons = [f"same grid {grid}" if same_grid else
                   f"other grid {crew.grid} (incident on {grid or 'unknown grid'})"]
        if required_skill is None:
            reasons.append("no skill required")
        else:
            reasons.append(f"has required skill {required_skill}" if has_skill else
                           f"lacks required skill {required_skill}")
        reasons.append(f"arrived at {load} incident{'' if load == 1 else 's'} "
                       "this duty period")
        # Weights keep the order lexicographic: grid outweighs skill outweighs load.
        score = 2_000_000 * same_grid + 1_000_000 * has_skill - min(load, 999_999)
        ranked.append(Recommendation(crew.crew, crew.grid, crew.skills, score,
                                     tuple(reasons)))
    ranked.sort(key=lambda r: (-r.score, r.crew))
    return ranked


QUEUE_CLASS = {"vulnerable": 0, "important": 0}
"""Priorities served before ``normal`` ones in the queue."""


def queue_key(priority: str | None, t0: int | None, incident_id: str) -> tuple[int, int, str]:
    """Order of the dispatch queue: vulnerable and important first, then by call time."""
    return (QUEUE_CLASS.get(priority or "normal", 1),
            t0 if t0 is not None else 2**63 - 1, incident_id)
