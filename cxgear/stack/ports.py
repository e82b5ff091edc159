"""Loopback ports: pick free ones for tests, tell whether one is taken before `cxgear dev` uses it."""

from __future__ import annotations

import errno
import socket
from urllib.parse import urlsplit

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK, *, consecutive: int = 1) -> int:
    """A port nobody listens on now (and the `consecutive - 1` after it, for OpenBao's cluster port)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if all(not port_in_use(port + i, host) for i in range(consecutive)) and (
            port + consecutive - 1 <= 65535
        ):
            return port
    raise RuntimeError(f"no run of {consecutive} free ports found on {host}")


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when binding would fail because someone holds the port.

    SO_REUSEADDR makes a port left in TIME_WAIT by a server we just stopped count as free, while
    a live listener (on this address or on 0.0.0.0) still counts as taken.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def port_of_address(address: str, default: int) -> int:
    """Port of "host:port" or of a URL such as "http://127.0.0.1:8200"."""
    if "://" not in address:
        address = f"tcp://{address}"
    return urlsplit(address).port or default
