"""One total deadline for an HTTP(S) download: connect, headers, every redirect hop and the body.

``urllib``'s ``timeout`` bounds each socket operation, not the whole: a server that sends its
headers a byte at a time, or a chain of slow redirects, stays under it forever. Here every
connection the opener makes is registered with a :class:`Deadline`, whose timer shuts the
sockets down when the time is up, so a blocked read returns at once.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.request
from typing import Any


class Deadline:
    """A point in time after which every registered socket is shut down (use as a context manager)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def left(self) -> float:
        """Seconds left (raises ``TimeoutError`` when none are)."""
        left = self.end - time.monotonic()
        if left <= 0 or self.expired:
            self.expired = True
            raise TimeoutError(f"the download took longer than {self.seconds} s")
        return left

    @property
    def passed(self) -> bool:
        """Whether the deadline has passed (a socket timeout set to :meth:`left` fires just at it)."""
        return self.expired or time.monotonic() >= self.end - 0.01

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down at the deadline (at once if it has passed)."""
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed
        pass


def deadline_opener(deadline: Deadline, *handlers: Any) -> urllib.request.OpenerDirector:
    """A ``urllib`` opener (with ``handlers``, e.g. a redirect policy) whose connections obey ``deadline``."""

    class HTTPConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.timeout = deadline.left()
            super().connect()
            deadline.watch(self.sock)

    class HTTPSConnection(http.client.HTTPSConnection):
        def connect(self) -> None:
            self.timeout = deadline.left()
            super().connect()
            deadline.watch(self.sock)

    class HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req: Any) -> Any:
            return self.do_open(HTTPConnection, req)

    class HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req: Any) -> Any:
            return self.do_open(HTTPSConnection, req, context=getattr(self, "_context", None))  # private, untyped

    return urllib.request.build_opener(HTTPHandler, HTTPSHandler, *handlers)
