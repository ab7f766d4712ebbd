"""event-capture: event-triggered camera snapshots for production lines."""

__version__ = "0.1.0"
