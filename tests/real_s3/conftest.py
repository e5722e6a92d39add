"""Fixtures of the real-S3-on-loopback layer (the outbox, the sinks, the model store and the worker against a
real SeaweedFS S3 server): one server per test (`s3_server`) or per module."""

from support.s3server import s3_server, s3_server_module  # noqa: F401 -- fixtures for this folder
