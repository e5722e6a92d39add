"""Names of the worker's Prometheus metrics that the operator reads for per-node progress.

The worker exposes these on `WorkerConfig.metrics_port` (path /metrics); the operator scrapes
them (as Prometheus would) so that pods need no write access to the Kubernetes API.
"""

METRICS_PATH = "/metrics"
LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"

PREFIX = "edge_inference_"
# Counters (exposed by prometheus_client with a `_total` suffix).
FILES = PREFIX + "files"  # label outcome: done, failed, corrupt, unreadable, symlink_escape, non_video, ...
FRAMES_DECODED = PREFIX + "frames_decoded"
FRAMES_ANALYSED = PREFIX + "frames_analysed"
FRAMES_SKIPPED_MOTION = PREFIX + "frames_skipped_motion"
EVENTS = PREFIX + "events"  # label class: events opened by class
EVENTS_UPLOADED = PREFIX + "events_uploaded"
BYTES_SCANNED = PREFIX + "video_bytes_scanned"
BYTES_UPLOADED = PREFIX + "bytes_uploaded"
ERRORS = PREFIX + "errors"  # label kind
OUTBOX_DEAD_LETTERS = PREFIX + "outbox_dead_letters"  # events S3 rejected for good, kept in dead-letter/
# Gauges.
OUTBOX_DEPTH = PREFIX + "outbox_events"  # events waiting on the node's disk
OUTBOX_BYTES = PREFIX + "outbox_bytes"
OUTBOX_OLDEST_AGE = PREFIX + "outbox_oldest_age_seconds"
OUTBOX_FULL = PREFIX + "outbox_full"  # 1 while the outbox refuses new events
SINK_MISCONFIGURED = PREFIX + "sink_misconfigured"  # 1 while the sink's last answer was a definite no
HEARTBEAT = PREFIX + "heartbeat_timestamp_seconds"  # unix time of the worker's last loop
BATCH_COMPLETE = PREFIX + "batch_complete"  # 1 once a Batch worker has finished every file
