"""The inference worker: video on the node in, durable events out (see docs/events.md)."""
