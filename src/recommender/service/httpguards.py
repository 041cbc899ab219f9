"""What the HTTP API believes about a request before the engine sees it: which Host it was
sent to, and which client sent it.

- **Host.** With ``--allowed-host`` given, a request whose ``Host`` header names another host
  is refused (421, JSON) before routing: a page on a rebinding domain (``evil.example``
  resolving to 127.0.0.1) cannot reach a loopback server through the victim's browser.
- **Client address.** ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed only from
  ``--trusted-proxy`` addresses (uvicorn believes them from 127.0.0.1 by default, which let
  any local client choose its address, and so its write limit, per request).
"""

from __future__ import annotations

import json
from typing import Any

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
