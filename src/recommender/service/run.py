"""``recommender serve``: one server process, or several on one port (``processes``), behind
an optional mirror of a remote index (``storage.remote.Mirror``)."""

from __future__ import annotations

import dataclasses
import os

from recommender.config import ServerConfig
from recommender.service.processes import serve_processes
from recommender.service.server import serve_here


def serve(config: ServerConfig, label: str = "") -> int:
    """Run until SIGTERM or SIGINT, then shut down gracefully (``config.processes`` server
    processes on the port when more than one: ``processes``)."""
    mirror = None
    if config.index_url:  # one mirror per server, however many processes serve it
        from recommender.storage.remote import Mirror

        mirror = Mirror(config.index_url, config.index_dir, config.watch_interval).start()
        config = dataclasses.replace(config, index_url=None, read_only=True)
    processes = config.processes or os.cpu_count() or 1
    try:
        if processes > 1:
            return serve_processes(dataclasses.replace(config, processes=processes))
        return serve_here(config, label)
    finally:
        if mirror is not None:
            mirror.stop()
