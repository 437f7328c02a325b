"""Bearer tokens of the HTTP API.

``DISPATCH_API_TOKENS`` is a comma-separated list of entries ``TOKEN`` or
``TOKEN:ROLE`` (a token has no ``:``); ROLE is ``viewer`` (the default),
``dispatcher`` or ``crew:<id>``. Every ``/api/*`` request must present a known token, as
``Authorization: Bearer TOKEN`` or in the ``dispatch_token`` cookie that
``POST /api/session`` sets for the board (a browser's ``EventSource`` cannot
send headers): for reads, and for writes that carry the ``X-Dispatch-Board: 1``
header (which a cross-site form or script cannot send without a CORS
preflight, never granted). Tokens are compared in constant time and
never logged or echoed.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

COOKIE = "dispatch_token"
BOARD_HEADER = "x-dispatch-board"
ROLES = ("viewer", "dispatcher")
_CREW_ROLE = re.compile(r"crew:[\w.-]+")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid token belongs to: its role (``viewer`` unless the entry names one)."""

    role: str = "viewer"


class ApiTokens:
    """The configured tokens; ``identify`` answers who presented one, in constant time."""

    def __init__(self, entries: list[tuple[str, str]]) -> None:
        self._entries = [(token.encode(), Principal(role)) for token, role in entries]

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def parse(cls, text: str) -> ApiTokens:
        """Parse ``TOKEN[:ROLE],...``; ValueError naming the entry's position (never
        the token) if one is empty or has an unknown role."""
        entries = []
        for n, raw in enumerate(text.split(","), start=1):
            entry = raw.strip()
            if not entry:
                if text.strip():
                    raise ValueError(f"api_tokens entry {n} is empty")
                continue
            # Tokens cannot contain ":"; everything after the first one is the role.
            token, sep, role = entry.partition(":")
            role = role if sep else "viewer"
            if not (role in ROLES or _CREW_ROLE.fullmatch(role)):
                raise ValueError(f"api_tokens entry {n}: unknown role")
            if len(token) < 8:
                raise ValueError(f"api_tokens entry {n}: a token needs at least 8 characters")
            entries.append((token, role))
        return cls(entries)

    def identify(self, presented: str | None) -> Principal | None:
        if not presented:
            return None
        candidate = presented.encode()
        found: Principal | None = None
        for token, principal in self._entries:
            # Every entry is compared, so the time does not tell which one matched.
            if hmac.compare_digest(candidate, token):
                found = principal
        return found


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header value."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None
