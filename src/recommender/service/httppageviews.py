"""The page view over HTTP, answered before routing: ``GET /v1/articles/{id}/related`` with
no query or only ``k``, when a stored list answers it (ASGI middleware, innermost).

Every page of a site asks for this, and the answer is the article's stored list joined from
its JSON pieces (``lists.jsonwire``) in tens of microseconds; Starlette's routing (a regular
expression per route), request objects, query parsing and a protobuf request cost more than
that. Anything else (filters, options, a token needed for reads, an id with no stored list,
any error) goes on to the routes unchanged, which answer it as before; the bytes and headers
of an answer are the routes' own (``tests/test_http.py``), and it is counted in the same
metrics. The outer middleware (Host check, CORS) still sees every request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

PREFIX, SUFFIX = "/v1/articles/", "/related"
DEFAULT_K = 10  # as ``httpjson.DEFAULT_K``: what a URL without ``k`` gets
_MAX_K_DIGITS = 3  # the lists are at most 30 deep: a longer k is never answered here


class PageViews:
    """ASGI middleware over the routes: stored page views answered here."""

    def __init__(
        self,
        app: Any,
        answer: Callable[[str, int], bytes | None],
        observe: Callable[[str, float], None],
    ) -> None:
        self.app = app
        self.answer = answer  # (article id, k) -> the JSON answer, or None
        self.observe = observe  # (status code name, seconds): the Related metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.perf_counter()
        body = self._stored(scope) if scope["type"] == "http" else None
        if body is None:
            await self.app(scope, receive, send)
            return
        headers = [(b"content-length", str(len(body)).encode()),
                   (b"content-type", b"application/json")]  # fmt: skip
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self.observe("OK", time.perf_counter() - started)

    def _stored(self, scope: dict[str, Any]) -> bytes | None:
        path: str = scope["path"]
        if scope["method"] != "GET" or not path.startswith(PREFIX) or not path.endswith(SUFFIX):
            return None
        article_id = path[len(PREFIX) : -len(SUFFIX)]
        k = _k(scope["query_string"])
        if not article_id or k is None:
            return None
        try:
            return self.answer(article_id, k)
        except Exception:  # the routes answer it again, with the error they map it to
            return None


def _k(query: bytes) -> int | None:
    """``k`` of a query string that holds nothing else; None: let the routes parse it."""
    if not query:
        return DEFAULT_K
    name, _, value = query.partition(b"=")
    if name != b"k" or not value.isdigit() or len(value) > _MAX_K_DIGITS:
        return None
    return int(value)
