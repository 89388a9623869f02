"""Activity events: the outbox, the relay to the event store, and the Beanie documents."""

from stockroom.events.recorder import compute_changes, record

__all__ = ["compute_changes", "record"]
