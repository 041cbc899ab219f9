"""uvicorn serving an ``HttpApi`` (``httpapi``): its socket, backlog, connection guards
(``httpguards``) and thread."""

from __future__ import annotations

import socket
import threading

from recommender.errors import InvalidInputError
from recommender.runtime import SERVING_THREADS, set_threads
from recommender.service.httpapi import HttpApi
from recommender.service.httpguards import connection_cap, guarded_protocol, proxy_settings


class HttpServer:
    """uvicorn serving an ``HttpApi`` on a thread, on a socket with ``SO_REUSEPORT`` (several
    server processes share the port, as they share the gRPC port)."""

    def __init__(
        self,
        api: HttpApi,
        host: str,
        port: int,
        grace_seconds: float,
        trusted_proxies: tuple[str, ...] = (),
    ) -> None:
        import uvicorn

        self.api = api
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
        # and without it every answer waited ~40 ms for the client's delayed ACK (Nagle)
        self.socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            self.socket.bind((host, port))
        except OSError as exc:
            self.socket.close()
            raise InvalidInputError(f"cannot listen on {host}:{port}: {exc}",
                                    field="http_port") from None  # fmt: skip
        # asyncio accepts up to ``backlog`` connections per wake-up before any of them runs
        # (and can be refused): a burst of 1,024 used every descriptor (EMFILE) at once. Each
        # of a burst may evict an older connection, whose socket closes a wake-up later, so
        # a flood holds up to cap + 2 x backlog descriptors: a quarter keeps that at 3/4 of
        # the limit (at cap/2 a CPU-starved server reached 986 of 1,024)
        backlog = min(511, connection_cap() // 4)
        self.socket.listen(backlog)
        self.port: int = self.socket.getsockname()[1]
        config = uvicorn.Config(
            api.create_app(),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=max(1, int(grace_seconds)),
            server_header=False,
            log_config=None,  # uvicorn's loggers go to the JSON handler like every other
            **proxy_settings(trusted_proxies),
            http=guarded_protocol(connection_cap()),
            timeout_keep_alive=5,
            backlog=backlog,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="http", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        set_threads(SERVING_THREADS)  # lookups run on the event loop's thread (``related_id``)
        self.server.run(sockets=[self.socket])

    def stop(self, timeout: float = 10.0) -> None:
        """Finish in-flight requests and stop listening."""
        self.server.should_exit = True
        self.thread.join(timeout)
        self.socket.close()
        self.api.pool.shutdown(wait=False, cancel_futures=True)
