"""A loopback port that counts the connections made to it, for proving a call was never made."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Listener:
    sock: socket.socket
    port: int

    def connections(self) -> int:
        """Connections the kernel accepted on our behalf since the last call (never answered).

        A TCP handshake completes into the backlog without `accept()`, so any client that
        reached the port is counted here, whether or not it then sent anything.
        """
        count = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return count
            conn.close()
            count += 1


@contextmanager
def listening() -> Iterator[Listener]:
    """A listener on 127.0.0.1:<free port> that never answers."""
    sock = socket.create_server(("127.0.0.1", 0), backlog=64)
    sock.setblocking(False)
    try:
        yield Listener(sock, sock.getsockname()[1])
    finally:
        sock.close()
