"""Fixtures of the outbox tests: a real SeaweedFS S3 server per test (`s3_server`) or per module."""

from support.s3server import s3_server, s3_server_module  # noqa: F401 -- fixtures for this folder
