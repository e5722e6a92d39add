"""Loopback networking for tests: free ports and plain HTTP GETs."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def loopback_url(port: int, path: str) -> str:
    """`http://127.0.0.1:<port><path>`."""
    return f"http://127.0.0.1:{port}{path}"


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """(status, body) of a GET, an error status too; (0, "") while nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""
