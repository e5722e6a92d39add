"""Loopback networking for tests: free ports and plain HTTP GETs."""

from __future__ import annotations

import socket
import urllib.request


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """(status, body) of a GET; an HTTP error status raises, as urllib does."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read().decode()
