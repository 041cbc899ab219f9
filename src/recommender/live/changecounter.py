"""The newest write the service acknowledged, shared by the server's processes.

``serve --processes N`` runs N processes over one working store; each applies the others'
writes by polling the store (``LiveIndex.follow_store``, every 0.2 s). Polling alone would let
a process answer, for up to that long, with a story another process has already deleted and
acknowledged. So every acknowledged ``Delete`` also raises this counter, an 8-byte file that
each process maps into memory, and every request first compares it with the change it has
applied (a memory read, ~0.2 us): when behind, it applies the store's changes before
answering. A deletion acknowledged by any process is then honoured by every request that
starts after it. Upserts still reach the other processes by polling (within the follow
interval): applying one on the request path means finding the stored lists it changes, which
stalled every request of the other processes for tens of milliseconds in the soak test.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import struct
from pathlib import Path

COUNTER_FILE = "changes.seq"
_log = logging.getLogger("recommender.writer")
_FORMAT = struct.Struct("<q")


class ChangeCounter:
    """A monotonic int64 in a small shared file: ``advance`` under a file lock, ``read``
    from a read-only memory map."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self._map: mmap.mmap | None = None
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            # Blocks really allocated, not a hole: reading a hole through a map makes the
            # kernel allocate a page, and on a full disk that is SIGBUS (the probe's server
            # died on the first read after the disk filled, and again at every restart).
            os.posix_fallocate(self._fd, 0, _FORMAT.size)
            self._map = mmap.mmap(self._fd, _FORMAT.size, access=mmap.ACCESS_READ)
        except OSError as exc:
            # no space for 8 bytes: read with pread (a system call, ~1 us) until a restart
            _log.warning("%s: cannot allocate the change counter (%s); reading it without "
                         "a memory map", path, exc.strerror)  # fmt: skip
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def read(self) -> int:
        """The newest acknowledged change."""
        if self._map is None:
            raw = os.pread(self._fd, _FORMAT.size, 0)
            return _FORMAT.unpack(raw)[0] if len(raw) == _FORMAT.size else 0
        value: int = _FORMAT.unpack_from(self._map)[0]
        return value

    def advance(self, seq: int) -> None:
        """Raise the counter to ``seq`` (never lower it: writers finish in any order)."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            if seq > self.read():
                os.pwrite(self._fd, _FORMAT.pack(seq), 0)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
        os.close(self._fd)
