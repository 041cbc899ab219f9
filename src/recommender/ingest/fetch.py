"""Fetching a feed or a page over HTTP(S), bounded in size and in time.

``urlopen``'s timeout applies to each socket read, so a server that sends a byte every few
seconds (headers included) keeps a fetch alive for ever; here every socket a fetch opens
(redirects too) is shut down once the fetch's deadline passes, which wakes any blocked read.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import socket
import threading
import urllib.error
import urllib.request
from typing import Any

MAX_FETCH_BYTES = 20 * 1024 * 1024
FETCH_TIMEOUT_S = 30.0  # per read
FETCH_DEADLINE_S = 120.0  # per fetch, all reads and redirects together


def fetch(url: str, user_agent: str, deadline_s: float = FETCH_DEADLINE_S) -> tuple[bytes, str]:
    """The bytes at ``url`` and the URL they came from (after redirects), within
    ``deadline_s`` in all: a server that drips (a byte every few seconds, headers included)
    is cut off there, not kept alive by a timeout that restarts with every byte."""
    request = urllib.request.Request(url, headers={"User-Agent": user_agent})
    deadline = Deadline(deadline_s)
    opener = urllib.request.build_opener(
        _DeadlineHTTPHandler(deadline), _DeadlineHTTPSHandler(deadline)
    )
    chunks: list[bytes] = []
    size = 0
    try:
        with opener.open(request, timeout=FETCH_TIMEOUT_S) as response:
            final_url = str(response.geturl())
            while size <= MAX_FETCH_BYTES:
                chunk = response.read1(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                deadline.check()
        deadline.check()  # cut off mid-read: the bytes so far are not the document
    except urllib.error.HTTPError as exc:
        raise OSError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise OSError(deadline.reason() or str(exc.reason)) from None
    except (OSError, http.client.HTTPException) as exc:
        # a socket shut down at the deadline surfaces as a reset, a bad status line or an
        # incomplete read: say it was the deadline
        raise OSError(deadline.reason() or f"{type(exc).__name__}: {exc}") from None
    finally:
        deadline.cancel()
    if size > MAX_FETCH_BYTES:
        raise ValueError(f"larger than {MAX_FETCH_BYTES:,} bytes")
    return b"".join(chunks), final_url if final_url.startswith("http") else ""


class Deadline:
    """Shuts down every socket registered with it once ``seconds`` have passed: a read
    blocked on a socket then returns at once, whatever the per-read timeout."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
        if self.expired.is_set():
            self._expire()

    def _expire(self) -> None:
        self.expired.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def check(self) -> None:
        if self.expired.is_set():
            raise OSError(self.reason())

    def reason(self) -> str:
        return f"not fetched within {self.seconds:.0f} s" if self.expired.is_set() else ""

    def cancel(self) -> None:
        self._timer.cancel()


class _Watched:
    """A connection whose socket, once connected, is handed to the fetch's ``Deadline``."""

    sock: socket.socket

    def __init__(self, *args: Any, deadline: Deadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self.deadline.watch(self.sock)


class _DeadlineHTTPConnection(_Watched, http.client.HTTPConnection):
    pass


class _DeadlineHTTPSConnection(_Watched, http.client.HTTPSConnection):
    pass


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_DeadlineHTTPConnection, deadline=self.deadline), req)


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            functools.partial(_DeadlineHTTPSConnection, deadline=self.deadline), req
        )
