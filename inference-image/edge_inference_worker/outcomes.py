"""What happened to a file: the `outcome` label of the files counter, and the batch summary."""

DONE = "done"
EMPTY = "empty"  # zero bytes
CORRUPT = "corrupt"  # looks like a video container but nothing decodes
TRUNCATED = "truncated"  # decoding stopped with an error part way; events before it are kept
NON_VIDEO = "non_video"  # no known container signature, or no video stream
UNREADABLE = "unreadable"  # not a regular file, permission denied, dangling symlink
VANISHED = "vanished"  # deleted between discovery and opening
SYMLINK_ESCAPE = "symlink_escape"  # resolves outside the input folder: refused, never opened
SKIPPED = "skipped"  # looks like video (by its name) but matches no include pattern: said once, not a failure
FAILED = "failed"  # the pipeline itself failed on this file (a bug, the detector); the log says why

# Outcomes decided by the file's content, recorded in the ledger and not retried for the same
# file id (FAILED too, so one poison file cannot loop forever). The others may heal (permissions
# fixed, file reappears) and are tried again.
TERMINAL = frozenset({DONE, EMPTY, CORRUPT, TRUNCATED, NON_VIDEO, FAILED})
