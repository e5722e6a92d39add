"""Reviewing what the fleet saw: the event index, queries over a bucket, reports and the browser."""
