"""The event contract: pydantic models, upcasters and the generated JSON Schema files."""

from schemas.events import CURRENT_SCHEMA_VERSION, EVENT_ADAPTER, EVENT_TYPES, Event
from schemas.parsing import InvalidEvent, parse_event

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "EVENT_ADAPTER",
    "EVENT_TYPES",
    "Event",
    "InvalidEvent",
    "parse_event",
]
