"""Several server processes on one port: ``recommender serve --processes N``.

Python answers one request at a time per process (the GIL), so a machine's cores serve in
parallel only as separate processes. Each child runs the whole server (``server.serve_here``) on
the same port with ``SO_REUSEPORT``: the kernel spreads incoming connections over them. Each
maps the same snapshot files read-only (FAISS, the stored lists), so memory grows by each
process's own state, not by the index.

- **Writes.** Any process accepts ``Upsert``/``Delete``; the working store (SQLite, WAL) makes
  it durable before the answer. The other processes read the store's change counter every
  ``ServerConfig.follow_interval`` seconds and apply what changed (``LiveIndex.follow_store``).
- **Snapshots.** Every process watches ``CURRENT`` and loads a new snapshot by itself.
- **Health and metrics** are per process: a health check answers for the process the
  connection landed on (each says SERVING once its snapshot is loaded); process ``i`` serves
  its metrics on ``metrics_port + i``.
- **Signals.** SIGTERM or SIGINT to the parent is passed on; each child drains its in-flight
  calls (``grace_seconds``) and exits. A child that dies otherwise is restarted. A child
  whose parent is gone (killed) stops by itself.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

from recommender.config import ServerConfig
from recommender.service.server import serve_here

_log = logging.getLogger("recommender.service")
_RESTART_PAUSE = 1.0


def serve_processes(config: ServerConfig) -> int:
    """Run ``config.processes`` servers on one port until SIGTERM or SIGINT."""
    host, _, port_text = config.address.rpartition(":")
    # every child must listen on the same ports: a port 0 is chosen here
    reserved = [_reserve(host, int(port_text))]
    port = reserved[0].getsockname()[1]
    http_port = config.http_port
    if http_port is not None:
        reserved.append(_reserve(host, http_port))
        http_port = reserved[-1].getsockname()[1]
    context = multiprocessing.get_context("spawn")  # grpc and OpenMP do not survive a fork
    configs = [
        dataclasses.replace(
            config,
            address=f"{host}:{port}",
            http_port=http_port,
            processes=1,
            metrics_port=None if config.metrics_port is None else _metrics_port(config, i),
        )
        for i in range(config.processes)
    ]
    children: list[Any] = [None] * len(configs)
    stop = threading.Event()

    def start(i: int, restart: bool = False) -> None:
        # a restarted child loads before it listens: its siblings answer meanwhile, and the
        # kernel would hand it its share of new connections at once (UNAVAILABLE for seconds)
        child_config = dataclasses.replace(configs[i], listen_after_load=restart)
        children[i] = context.Process(
            target=_child,
            args=(child_config, os.getpid(), f" (process {i + 1} of {len(configs)})"),
            name=f"recommender-serve-{i}",
        )
        children[i].start()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for i in range(len(configs)):
        start(i)
    for sock in reserved:
        sock.close()  # the children hold the ports now (or will bind them with SO_REUSEPORT)
    while not stop.wait(0.5):
        for i, child in enumerate(children):
            if not child.is_alive():
                print(f"recommender: process {i} exited ({child.exitcode}); restarting it",
                      file=sys.stderr, flush=True)  # fmt: skip
                time.sleep(_RESTART_PAUSE)
                start(i, restart=True)
    for child in children:
        if child.is_alive():
            os.kill(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + config.grace_seconds + 10.0
    for child in children:
        child.join(max(0.1, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
    return 0


def _reserve(host: str, port: int) -> socket.socket:
    """A socket bound to ``port`` (0: a free one) with ``SO_REUSEPORT``, so that the children
    can bind the same port; closed once they have."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host.strip("[]"), port))
    return sock


def _metrics_port(config: ServerConfig, i: int) -> int:
    assert config.metrics_port is not None
    return 0 if config.metrics_port == 0 else config.metrics_port + i


def _child(config: ServerConfig, parent: int, label: str) -> None:
    def orphaned() -> None:
        # a killed parent cannot pass SIGTERM on: stop when it is gone
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=orphaned, name="parent-watch", daemon=True).start()
    sys.exit(serve_here(config, label=label))
