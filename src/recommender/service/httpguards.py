"""What the HTTP API believes about a request before the engine sees it: which Host it was
sent to, and which client sent it.

- **Host.** With ``--allowed-host`` given, a request whose ``Host`` header names another host
  is refused (421, JSON) before routing: a page on a rebinding domain (``evil.example``
  resolving to 127.0.0.1) cannot reach a loopback server through the victim's browser.
- **Client address.** ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed only from
  ``--trusted-proxy`` addresses (uvicorn believes them from 127.0.0.1 by default, which let
  any local client choose its address, and so its write limit, per request).
- **Connections.** uvicorn times out only idle keep-alive connections: one that sends nothing,
  trickles its headers or never ends its body stayed open for ever, and enough of them used up
  the process's file descriptors (gRPC then failed too, and asyncio spun on ``accept``).
  Here a request's head must arrive within ``HEADER_TIMEOUT_S`` and its body within
  ``BODY_TIMEOUT_S`` plus its declared length at ``MIN_BODY_RATE``; a client address holds at
  most ``MAX_CONNECTIONS_PER_CLIENT`` connections and the process at most a share of its
  descriptor limit (``connection_cap``): past it a new connection evicts the oldest one whose
  client still owes a request head or body (idle, trickling a head, or a body never ended), or
  is closed at once when every connection is being answered.
"""

from __future__ import annotations

import asyncio
import collections
import json
import resource
from typing import Any

HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 10.0  # plus the declared length at MIN_BODY_RATE: 16 MB may take 3 minutes
MIN_BODY_RATE = 100_000  # bytes per second
MAX_CONNECTIONS_PER_CLIENT = 64

Scope = dict[str, Any]


class HostCheck:
    """ASGI middleware: refuse requests whose Host is not one of ``allowed`` (ports ignored)."""

    def __init__(self, app: Any, allowed: tuple[str, ...]) -> None:
        self.app = app
        self.allowed = {host.lower() for host in allowed}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or host_of(scope) in self.allowed:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": {"code": 421, "status": "MISDIRECTED_REQUEST",
                                     "message": "this server does not answer for that Host; "
                                                "see serve --allowed-host"}}).encode()  # fmt: skip
        await send({"type": "http.response.start", "status": 421,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


def host_of(scope: Scope) -> str:
    """The request's Host header without its port, lower-cased ("" when absent)."""
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host: str = value.decode("latin-1").strip().lower()
            if host.startswith("["):  # [::1]:8080
                return host[1 : host.find("]")] if "]" in host else host
            return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return ""


def proxy_settings(trusted_proxies: tuple[str, ...]) -> dict[str, Any]:
    """uvicorn's settings for forwarding headers: believed from ``trusted_proxies`` only."""
    if not trusted_proxies:
        return {"proxy_headers": False, "forwarded_allow_ips": ""}
    return {"proxy_headers": True, "forwarded_allow_ips": ",".join(trusted_proxies)}


def connection_cap() -> int:
    """HTTP connections one process keeps at once: half its descriptor limit (gRPC, the
    index's files and SQLite need the rest), at most 4,096."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, min(4096, (soft if soft > 0 else 1024) // 2))


def guarded_protocol(cap: int, per_client: int = MAX_CONNECTIONS_PER_CLIENT) -> type:
    """uvicorn's httptools protocol with the head and body deadlines and the connection caps
    (a class per server: the counts belong to one server). At the cap a new connection evicts
    the oldest one whose client still owes a request head or body (idle, trickling a head, or
    a body never ended), so a flood of slow connections of any kind cannot keep out clients
    that send whole requests; a connection whose request is being answered is never evicted."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    open_per_client: collections.Counter[str] = collections.Counter()
    # Connections whose client owes a head or body, oldest first. Body senders count too: when
    # only head waiters could be evicted, ~550 never-ended bodies filled the cap and every new
    # page view was closed at once.
    owing: collections.OrderedDict[Any, None] = collections.OrderedDict()

    class GuardedProtocol(HttpToolsProtocol):
        _peer: str | None = None
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            peer = self.client[0] if self.client else ""
            if open_per_client[peer] >= per_client:
                transport.abort()  # no answer: answering is what a flood wants
                return
            if len(self.connections) > cap:
                if not owing:
                    transport.abort()
                    return
                oldest, _ = owing.popitem(last=False)
                oldest.transport.abort()
            self._peer = peer
            open_per_client[peer] += 1
            owing[self] = None
            self._expect(HEADER_TIMEOUT_S)

        def connection_lost(self, exc: Exception | None) -> None:
            self._expect(None)
            owing.pop(self, None)
            if self._peer is not None:
                open_per_client[self._peer] -= 1
                if open_per_client[self._peer] <= 0:
                    del open_per_client[self._peer]
                self._peer = None
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._expect(HEADER_TIMEOUT_S)  # a kept-alive connection's next request

        def on_headers_complete(self) -> None:
            declared = dict(self.headers).get(b"content-length", b"0")
            size = int(declared) if declared.isdigit() and len(declared) < 12 else 0
            self._expect(BODY_TIMEOUT_S + size / MIN_BODY_RATE)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._expect(None)  # answering is the engine's time, not the client's
            owing.pop(self, None)
            super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._peer is not None and not self.transport.is_closing():
                owing[self] = None  # kept alive, idle until its next request

        def _expect(self, seconds: float | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            if seconds is not None and not self.transport.is_closing():
                self._deadline = self.loop.call_later(seconds, self._too_slow)

        def _too_slow(self) -> None:
            self._deadline = None
            if self.cycle is None or not self.cycle.response_started:
                self.transport.abort()  # a head or body that did not come in time

    return GuardedProtocol
