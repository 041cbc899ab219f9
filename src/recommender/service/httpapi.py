"""HTTP/JSON beside gRPC: the same servicer, the same conversions, the same engine.

Routes follow the HTTP/JSON mapping of ``recommender.v1`` (the ``google.api.http``
conventions of gRPC transcoding): a request message is built from the path, the query string
(``k=5``, ``filters.langs=ar``, ``options.no_recency=true``; repeated fields repeat the
parameter; ``k`` defaults to 10) or the JSON body, handed to ``RecommenderServicer``, and
the response message is written as JSON with the proto's field names (``json_format``; int64
fields as strings, enums by name). An answer therefore equals the gRPC answer field for
field, stored lists included.

    GET    /v1/articles/{id}/related   Related by id; shorthands: lang, section, source,
                                       exclude_id, published_after, published_before (filters)
    POST   /v1/related                 Related, body a RelatedRequest (text, examples or id)
    POST   /v1/recommend               Recommend, body a RecommendRequest
    GET    /v1/articles/{id}           GetArticle
    POST   /v1/articles                Upsert, body an UpsertRequest; needs the token
    DELETE /v1/articles/{id}           Delete; needs the token; 404 when the id is unknown
    POST   /v1/events                  RecordEvents (no token: browsers send them; limited
                                       per client address, body at most 256 KiB)
    GET    /v1/stats                   Stats
    GET    /healthz                    200 once an index serves, else 503

Errors are ``{"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "k: ..."}}``
with the HTTP status gRPC transcoding gives each code (400, 401, 404, 429, 503, 500, ...).

Starlette (the ASGI toolkit under FastAPI; small, typed, well kept) routes and answers;
uvicorn (with httptools) parses HTTP. The engine's work runs on a thread pool shaped like the
gRPC server's (``workers`` threads, each with its own FAISS/BLAS thread count), never on the
event loop.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from google.protobuf.message import Message
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from recommender.errors import NotFoundError, RecommenderError
from recommender.runtime import SERVING_THREADS, set_threads
from recommender.service.httpguards import (
    HostCheck,
)
from recommender.service.httpjson import (
    body_message,
    message_json,
    related_from_query,
    related_json,
)
from recommender.service.httppageviews import PageViews
from recommender.service.interceptors import (
    WRITE_METHODS,
    limiter_for,
    status_of,
    token_matches,
    too_many,
)
from recommender.service.metrics import Metrics
from recommender.service.ratelimit import WriteLimiter
from recommender.v1 import recommender_pb2 as pb

_log = logging.getLogger("recommender.service")
MAX_BODY_BYTES = 16 * 1024 * 1024  # as the gRPC server's message limit
DRAIN_BYTES = 4 * MAX_BODY_BYTES  # of an oversized body, read and dropped before the 413
MAX_EVENTS_BODY_BYTES = 256 * 1024  # 500 events; anything larger is not a browser's beacon

# The HTTP status gRPC transcoding gives each code (google.rpc.Code's mapping)
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.INTERNAL: 500,
}


class _Refused(Exception):
    """A call stopped before the engine: its status code and message (and the HTTP status,
    where HTTP has a more precise one than the code's)."""

    def __init__(self, code: grpc.StatusCode, message: str, http_status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status or HTTP_STATUS.get(code, 500)


async def _read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused (413) past ``limit`` bytes without keeping it in memory.

    An oversized body is still read (and dropped) up to ``DRAIN_BYTES``: a client that is
    still sending when the answer comes and the connection closes sees a reset, not the 413.
    """
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif chunks:
            chunks = []  # over the limit: keep nothing
        if size > DRAIN_BYTES:
            break
    if size > limit:
        raise _Refused(grpc.StatusCode.RESOURCE_EXHAUSTED, f"body: over {limit:,} bytes", 413)
    return b"".join(chunks)


class HttpApi:
    """The Starlette application over a servicer (``create_app``) and its thread pool."""

    def __init__(
        self,
        servicer: Any,
        ready: Callable[[], bool],
        metrics: Metrics,
        *,
        token: str | None = None,
        auth_reads: bool = False,
        write_limiter: WriteLimiter | None = None,
        event_limiter: WriteLimiter | None = None,
        workers: int = 2,
        cors_origins: tuple[str, ...] = (),
        anonymous_writes: bool = False,
        allowed_hosts: tuple[str, ...] = (),
    ) -> None:
        self.servicer = servicer
        self.ready = ready
        self.metrics = metrics
        self.token = token
        self.auth_reads = auth_reads
        self.write_limiter = write_limiter
        self.event_limiter = event_limiter
        self.cors_origins = cors_origins
        self.anonymous_writes = anonymous_writes
        self.allowed_hosts = allowed_hosts
        self.pool = ThreadPoolExecutor(
            workers, thread_name_prefix="http", initializer=set_threads, initargs=(SERVING_THREADS,)
        )
        self._observers = {name: metrics.observer(name) for name in pb.DESCRIPTOR.services_by_name[
            "Recommender"].methods_by_name}  # fmt: skip

    def create_app(self) -> Starlette:
        """The ASGI application."""
        routes = [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/v1/stats", self.stats, methods=["GET"]),
            Route("/v1/related", self.related_body, methods=["POST"]),
            Route("/v1/recommend", self.recommend, methods=["POST"]),
            Route("/v1/articles", self.upsert, methods=["POST"]),
            Route("/v1/events", self.record_events, methods=["POST"]),
            Route("/v1/articles/{article_id:path}/related", self.related_id, methods=["GET"]),
            Route("/v1/articles/{article_id:path}", self.article, methods=["GET", "DELETE"]),
        ]
        middleware = []
        if self.cors_origins:
            middleware.append(
                Middleware(
                    CORSMiddleware,
                    allow_origins=list(self.cors_origins),
                    allow_methods=["GET", "POST", "DELETE"],
                    allow_headers=["authorization", "content-type"],
                    max_age=3600,
                )
            )
        if not (self.token is not None and self.auth_reads):  # innermost: page views first
            answer, observe = self.servicer.page_view_json, self._observers["Related"]
            middleware.append(Middleware(PageViews, answer=answer, observe=observe))
        if self.allowed_hosts:  # outermost: a foreign Host gets no answer, not even CORS
            middleware.insert(0, Middleware(HostCheck, allowed=self.allowed_hosts))
        # a path no route matches (an id with a newline, say) answers in JSON too
        handlers = {404: _not_found, 405: _not_found}
        return Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)

    async def healthz(self, request: Request) -> Response:
        serving = self.ready()
        body = {"status": "SERVING" if serving else "NOT_SERVING"}
        return _json(body, 200 if serving else 503)

    async def stats(self, request: Request) -> Response:
        return await self._call("Stats", request, lambda: pb.StatsRequest())

    async def related_id(self, request: Request) -> Response:
        article_id = request.path_params["article_id"]
        params = list(request.query_params.multi_items())

        def lookup() -> bytes | None:
            # a stored list's answer with parameters ``httppageviews`` leaves to the routes (or
            # from a snapshot without JSON pieces), on the event loop: it saves the pool's two
            # thread switches. It may first apply other processes' writes (milliseconds, after
            # writes only); anything that ranks live goes to the pool
            encoded = self.servicer.stored_answer(related_from_query(article_id, params))
            if encoded is None:
                return None
            return _dumps(related_json(pb.RelatedResponse.FromString(encoded)))

        return await self._call(
            "Related", request, lambda: related_from_query(article_id, params), lookup=lookup
        )

    async def related_body(self, request: Request) -> Response:
        return await self._call("Related", request, body=pb.RelatedRequest)

    async def recommend(self, request: Request) -> Response:
        return await self._call("Recommend", request, body=pb.RecommendRequest)

    async def upsert(self, request: Request) -> Response:
        return await self._call("Upsert", request, body=pb.UpsertRequest)

    async def record_events(self, request: Request) -> Response:
        return await self._call("RecordEvents", request, body=pb.RecordEventsRequest)

    async def article(self, request: Request) -> Response:
        article_id = request.path_params["article_id"]
        if request.method == "DELETE":
            return await self._call(
                "Delete", request, lambda: pb.DeleteRequest(ids=[article_id]), missing=article_id
            )
        return await self._call("GetArticle", request, lambda: pb.GetArticleRequest(id=article_id))

    async def _call(
        self,
        method: str,
        request: Request,
        build: Callable[[], Message] | None = None,
        missing: str | None = None,
        lookup: Callable[[], bytes | None] | None = None,
        body: type[Message] | None = None,
    ) -> Response:
        """One call: admitted (token, write limit), answered (``lookup`` on the event loop,
        else the servicer on the pool, with the request ``build`` makes or parsed from a JSON
        ``body``), mapped to a status, counted in the metrics."""
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            self._admit(method, request)
            if body is not None:
                limit = MAX_EVENTS_BODY_BYTES if method == "RecordEvents" else MAX_BODY_BYTES
                build = functools.partial(body_message, await _read_body(request, limit), body)
            assert build is not None
            answer = lookup() if lookup is not None else None
            if answer is None:
                loop = asyncio.get_running_loop()
                answer = await loop.run_in_executor(self.pool, self._answer, method, build, missing)
            return Response(answer, media_type="application/json")
        except _Refused as refused:
            code = refused.code
            return _error(code, str(refused), refused.http_status)
        except RecommenderError as error:
            code, message = status_of(error)
            return _error(code, message, getattr(error, "http_status", 0))
        except ClientDisconnect:
            # the client left mid-body: nobody to answer, nothing went wrong here
            code = grpc.StatusCode.CANCELLED
            return _error(code, "the client disconnected before sending the whole body", 499)
        except Exception as error:
            code, message = status_of(error)
            _log.exception("%s over HTTP failed", method)
            return _error(code, message)
        finally:
            self._observers[method](code.name, time.perf_counter() - started)

    def _admit(self, method: str, request: Request) -> None:
        """The token and the write limit, as the gRPC interceptor checks them."""
        peer = _peer(request)
        header = request.headers.get("authorization", "")
        guarded = self.token is not None and (method in WRITE_METHODS or self.auth_reads)
        if guarded and not token_matches(self.token or "", header):
            _log.warning("refused %s over HTTP without a valid token from %s", method, peer)
            raise _Refused(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing or wrong 'authorization: Bearer <token>'",
            )
        if method in WRITE_METHODS and self.token is None and not self.anonymous_writes:
            # any page open in a browser on this machine can POST here (text/plain needs no
            # CORS preflight): without a token, writes over HTTP are an explicit choice
            raise _Refused(
                grpc.StatusCode.PERMISSION_DENIED,
                "writes over HTTP need a token (serve --auth-token-file) or "
                "serve --allow-anonymous-writes",
            )
        limiter = limiter_for(method, self.write_limiter, self.event_limiter)
        wait = limiter.allow(peer) if limiter is not None else 0.0
        if wait:
            assert limiter is not None
            raise _Refused(grpc.StatusCode.RESOURCE_EXHAUSTED, too_many(method, limiter, wait))

    def _answer(self, method: str, build: Callable[[], Message], missing: str | None) -> bytes:
        """The servicer's answer as JSON bytes (on a pool thread)."""
        message = build()
        answer = getattr(self.servicer, method)(message, None)
        if isinstance(answer, bytes):  # a stored list, already serialised
            answer = pb.RelatedResponse.FromString(answer)
        if missing is not None and getattr(answer, "deleted", 1) == 0:
            raise NotFoundError(f"article {missing!r} is not in the index")
        if isinstance(answer, pb.RelatedResponse):
            return _dumps(related_json(answer))
        return _dumps(message_json(answer))


async def _not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    code = grpc.StatusCode.NOT_FOUND if status == 404 else grpc.StatusCode.UNIMPLEMENTED
    return _error(code, f"no route for {request.method} {request.url.path[:200]!r}", status)


def _dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def _peer(request: Request) -> str:
    """The client as gRPC names peers (``ipv4:HOST:PORT``), so one limiter serves both."""
    if request.client is None:
        return "unknown"
    host, port = request.client.host, request.client.port
    return f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False).encode("utf-8"),
        status_code=status,
        media_type="application/json",
    )


def _error(code: grpc.StatusCode, message: str, status: int = 0) -> Response:
    status = status or HTTP_STATUS.get(code, 500)
    return _json({"error": {"code": status, "status": code.name, "message": message}}, status)
