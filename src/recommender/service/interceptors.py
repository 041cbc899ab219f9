"""Server interceptors: error mapping, bearer-token auth, metrics.

Error mapping is the one place where domain errors become gRPC status codes:

    InvalidInputError  -> INVALID_ARGUMENT  (message names the field)
    NotFoundError      -> NOT_FOUND
    NotReadyError      -> UNAVAILABLE
    ModelError         -> FAILED_PRECONDITION
    StoreError         -> FAILED_PRECONDITION (writes while the working store is unusable)
    anything else      -> INTERNAL          (logged with its traceback)
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from recommender.errors import (
    DiskFullError,
    InvalidInputError,
    ModelError,
    NotFoundError,
    NotReadyError,
    RecommenderError,
    StoreError,
)
from recommender.service.metrics import Metrics
from recommender.service.ratelimit import WriteLimiter

_log = logging.getLogger("recommender.service")

WRITE_METHODS = frozenset({"Upsert", "Delete"})
EVENT_METHODS = frozenset({"RecordEvents"})  # no token (browsers send them), limited apart


def status_of(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a client sees for an error."""
    if isinstance(error, InvalidInputError):
        where = f"{error.field}: " if error.field else ""
        return grpc.StatusCode.INVALID_ARGUMENT, f"{where}{error}"
    if isinstance(error, NotFoundError):
        return grpc.StatusCode.NOT_FOUND, str(error)
    if isinstance(error, NotReadyError):
        return grpc.StatusCode.UNAVAILABLE, str(error)
    if isinstance(error, DiskFullError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(error)
    if isinstance(error, ModelError | StoreError):
        return grpc.StatusCode.FAILED_PRECONDITION, str(error)
    if isinstance(error, RecommenderError):
        return grpc.StatusCode.INTERNAL, str(error)
    return grpc.StatusCode.INTERNAL, "internal error (see the server log)"


def _method_name(handler_call_details: grpc.HandlerCallDetails) -> str:
    return str(handler_call_details.method).rsplit("/", 1)[-1]


def _wrap_unary(
    handler: grpc.RpcMethodHandler, wrapper: Callable[[Any, Any, Any], Any]
) -> grpc.RpcMethodHandler:
    if handler is None or handler.unary_unary is None:
        return handler
    inner = handler.unary_unary

    def behaviour(request: Any, context: grpc.ServicerContext) -> Any:
        return wrapper(inner, request, context)

    return grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class ServiceInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Auth, deadlines, error mapping and metrics for every Recommender method."""

    def __init__(
        self,
        metrics: Metrics,
        token: str | None = None,
        auth_reads: bool = False,
        write_limiter: WriteLimiter | None = None,
        event_limiter: WriteLimiter | None = None,
    ) -> None:
        self.metrics = metrics
        self.token = token
        self.auth_reads = auth_reads
        self.write_limiter = write_limiter
        self.event_limiter = event_limiter
        # (method, authorized) -> wrapped handler: built once, not per call (at thousands of
        # calls a second, rebuilding the handler and its closures was a measurable share)
        self._handlers: dict[tuple[str, bool], grpc.RpcMethodHandler] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        full_name = str(handler_call_details.method)
        if not full_name.startswith("/recommender.v1.Recommender/"):
            return continuation(handler_call_details)  # health, reflection
        method = _method_name(handler_call_details)
        authorized = True
        if self.token is not None and (method in WRITE_METHODS or self.auth_reads):
            metadata = dict(handler_call_details.invocation_metadata or ())
            authorized = self._authorized(metadata.get("authorization", ""))
        handler = self._handlers.get((full_name, authorized))
        if handler is None:
            handler = _wrap_unary(
                continuation(handler_call_details), self._wrapper(method, authorized)
            )
            self._handlers[(full_name, authorized)] = handler
        return handler

    def _wrapper(self, method: str, authorized: bool) -> Callable[[Any, Any, Any], Any]:
        observe = self.metrics.observer(method)
        limiter = limiter_for(method, self.write_limiter, self.event_limiter)

        def wrapper(inner: Any, request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                if not authorized:
                    # for the operator: who tried (the token itself is never logged)
                    _log.warning("refused %s without a valid token from %s", method,
                                 context.peer())  # fmt: skip
                    code = grpc.StatusCode.UNAUTHENTICATED
                    context.abort(code, "missing or wrong 'authorization: Bearer <token>'")
                wait = limiter.allow(context.peer()) if limiter is not None else 0.0
                if wait:
                    code = grpc.StatusCode.RESOURCE_EXHAUSTED
                    context.abort(code, too_many(method, limiter, wait))  # type: ignore[arg-type]
                remaining = context.time_remaining()
                if remaining is not None and remaining <= 0:
                    code = grpc.StatusCode.DEADLINE_EXCEEDED
                    context.abort(code, "the deadline passed before the call started")
                return inner(request, context)
            except RecommenderError as error:
                code, message = status_of(error)
                context.abort(code, message)
            except Exception as error:
                if code != grpc.StatusCode.OK:
                    raise  # context.abort raised: the status is already set
                code, message = status_of(error)
                _log.exception("%s failed", method)
                context.abort(code, message)
            finally:
                observe(code.name, time.perf_counter() - started)

        return wrapper

    def _authorized(self, header: str) -> bool:
        assert self.token is not None
        return token_matches(self.token, header)


def limiter_for(
    method: str, writes: WriteLimiter | None, events: WriteLimiter | None
) -> WriteLimiter | None:
    """The per-client limit a method's calls count against (None: not limited)."""
    return writes if method in WRITE_METHODS else events if method in EVENT_METHODS else None


def too_many(method: str, limiter: WriteLimiter, wait: float) -> str:
    """What a client over its per-address limit is told (gRPC and HTTP alike)."""
    what = "events" if method in EVENT_METHODS else "writes"
    return (
        f"too many {what} from this client: {limiter.rate:g} calls per second at most; "
        f"retry in {wait:.2f} s"
    )


def token_matches(token: str, header: str) -> bool:
    """Whether an ``authorization`` header carries ``Bearer <token>`` (in constant time)."""
    return hmac.compare_digest(header.encode(), f"Bearer {token}".encode())
