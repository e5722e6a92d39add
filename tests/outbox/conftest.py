"""Fixtures of the outbox tests: a real SeaweedFS S3 server per test (`s3_server`)."""

from support.s3server import s3_server  # noqa: F401 -- re-exported as a fixture for this folder
