"""The gRPC server: ``create_server(...)`` builds it, ``serve(...)`` runs it until SIGTERM.

The servicer is thin: it converts messages (``convert``), calls the engine, converts back.
Health checking (``grpc.health.v1``) says NOT_SERVING until the index is loaded; server
reflection lets tools such as grpcurl discover the API.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from recommender.config import ServerConfig
from recommender.engine import DEFAULT_OPTIONS, MAX_K, NO_FILTERS, Engine
from recommender.errors import InvalidInputError, NotFoundError
from recommender.events.records import MAX_EVENTS_PER_CALL
from recommender.ingest.records import parse_date_field
from recommender.runtime import SERVING_THREADS, set_threads
from recommender.service import convert
from recommender.service.httpapi import HttpApi
from recommender.service.httpserver import HttpServer
from recommender.service.interceptors import ServiceInterceptor
from recommender.service.logs import JsonFormatter
from recommender.service.metrics import Metrics
from recommender.service.ratelimit import WriteLimiter
from recommender.storage.snapshot import SnapshotError
from recommender.v1 import recommender_pb2 as pb
from recommender.v1 import recommender_pb2_grpc as pb_grpc

SERVICE_NAME = "recommender.v1.Recommender"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_log = logging.getLogger("recommender.service")


def _k(value: int) -> int:
    if value == 0:
        raise InvalidInputError(f"must be between 1 and {MAX_K}, got 0", field="k")
    return value


class RecommenderServicer(pb_grpc.RecommenderServicer):
    """``recommender.v1.Recommender`` over an Engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _snapshot_name(self) -> str:
        return str(self.engine.snapshot.manifest.name)

    def Related(self, request: pb.RelatedRequest, context: Any) -> pb.RelatedResponse | bytes:
        query = request.WhichOneof("query")
        if query is None:
            raise InvalidInputError("set one of article_id, text, examples", field="query")
        kwargs: dict[str, Any] = {}
        if query == "article_id":
            # the page-view path: a stored list's answer, already serialised
            encoded = self.stored_answer(request)
            if encoded is not None:
                return encoded
            kwargs["article_id"] = request.article_id
        elif query == "text":
            kwargs["text"] = request.text
        else:
            kwargs["positive_ids"] = list(request.examples.positive_ids)
            kwargs["negative_ids"] = list(request.examples.negative_ids)
        response = self.engine.related(
            k=_k(request.k),
            filters=convert.filters_from_pb(request.filters),
            options=convert.options_from_pb(request.options, self.engine.default_options),
            lang=request.lang or None,
            published_at=parse_date_field(request.published_at, "published_at"),
            **kwargs,
        )
        return convert.response_to_pb(response, self._snapshot_name())

    def stored_answer(self, request: pb.RelatedRequest) -> bytes | None:
        """A stored list's serialised answer to a ``Related`` by id, or None when the request
        must rank live (other filters or options, k > the lists' depth, no list)."""
        if request.WhichOneof("query") != "article_id":
            return None
        filters = (
            convert.filters_from_pb(request.filters) if request.HasField("filters") else NO_FILTERS
        )
        options = (
            convert.options_from_pb(request.options, self.engine.default_options)
            if request.HasField("options")
            else DEFAULT_OPTIONS
        )
        return self.engine.related_encoded(request.article_id, request.k, filters, options)

    def page_view_json(self, article_id: str, k: int) -> bytes | None:
        """The JSON answer of a ``Related`` by id with no filters or options, when a stored
        list answers it (``httppageviews``); None: answer it as any other request."""
        return self.engine.related_encoded(article_id, k, NO_FILTERS, DEFAULT_OPTIONS, json=True)

    def Recommend(self, request: pb.RecommendRequest, context: Any) -> pb.RelatedResponse:
        response = self.engine.recommend(
            list(request.history_ids),
            k=_k(request.k),
            filters=convert.filters_from_pb(request.filters),
            options=convert.options_from_pb(request.options, self.engine.default_options),
            reader=request.reader,
        )
        return convert.response_to_pb(response, self._snapshot_name())

    def GetArticle(self, request: pb.GetArticleRequest, context: Any) -> pb.Article:
        if not request.id:
            raise InvalidInputError("is required", field="id")
        return convert.article_to_pb(self.engine.get_article(request.id))

    def Upsert(self, request: pb.UpsertRequest, context: Any) -> pb.UpsertResponse:
        articles = [convert.article_from_pb(a, i) for i, a in enumerate(request.articles)]
        outcome = self.engine.upsert(articles)
        return pb.UpsertResponse(
            added=len(outcome.added), updated=len(outcome.updated), unchanged=len(outcome.unchanged)
        )

    def Delete(self, request: pb.DeleteRequest, context: Any) -> pb.DeleteResponse:
        if not request.ids:
            raise InvalidInputError("give at least one id", field="ids")
        return pb.DeleteResponse(deleted=len(self.engine.delete(list(request.ids))))

    def Stats(self, request: pb.StatsRequest, context: Any) -> pb.StatsResponse:
        return convert.stats_to_pb(self.engine.stats())

    def RecordEvents(
        self, request: pb.RecordEventsRequest, context: Any
    ) -> pb.RecordEventsResponse:
        if not 1 <= len(request.events) <= MAX_EVENTS_PER_CALL:
            raise InvalidInputError(f"give 1-{MAX_EVENTS_PER_CALL} events, got "
                                    f"{len(request.events)}", field="events")  # fmt: skip
        events = [convert.event_from_pb(e, f"events[{n}]") for n, e in enumerate(request.events)]
        return pb.RecordEventsResponse(recorded=self.engine.events.record(events))


@dataclass
class RunningServer:
    """A started server and what belongs to it."""

    server: grpc.Server
    port: int
    engine: Engine
    health: health.HealthServicer
    metrics: Metrics
    metrics_port: int | None
    stopping: threading.Event = field(default_factory=threading.Event)
    http: HttpServer | None = None

    @property
    def http_port(self) -> int | None:
        """The HTTP/JSON port, when the server answers HTTP."""
        return self.http.port if self.http is not None else None

    def stop(self, grace: float | None = 5.0) -> None:
        """Say NOT_SERVING, finish in-flight calls within ``grace`` seconds, release the engine."""
        self.stopping.set()
        self.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
        if self.http is not None:
            self.http.stop(timeout=(grace or 0) + 5)
        self.server.stop(grace).wait()
        self.engine.close()


def create_server(config: ServerConfig, engine: Engine | None = None) -> RunningServer:
    """Build and start the server (port 0 picks a free port); loads the index in the background.

    Health is NOT_SERVING until the index is loaded, then SERVING. With
    ``config.listen_after_load`` (a process restarted beside siblings that already serve on
    its port) the index and the model load first: under ``SO_REUSEPORT`` a listening process
    gets its share of new connections, and must not get them before it can answer.
    """
    engine = engine or Engine(
        config.index_dir,
        writable=not config.read_only,
        result_cache_size=config.result_cache,
        use_lists=config.use_lists,
        rerank_lists=config.rerank_lists,
    )
    metrics = Metrics()
    interceptor = ServiceInterceptor(
        metrics,
        config.auth_token,
        config.auth_reads,
        WriteLimiter(config.write_rate, config.write_burst),
        WriteLimiter(config.event_rate, config.event_burst),
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(
            max_workers=config.workers,
            thread_name_prefix="rpc",
            # OpenMP's thread count is per thread: each request thread sets its own, or FAISS
            # would start (and spin) a team per request thread
            initializer=set_threads,
            initargs=(SERVING_THREADS,),
        ),
        interceptors=[interceptor],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 1),  # several processes on one port (``processes``)
        ],
    )
    servicer = RecommenderServicer(engine)
    _add_servicer(servicer, server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection(
        (pb.DESCRIPTOR.services_by_name["Recommender"].full_name, reflection.SERVICE_NAME,
         health_pb2.DESCRIPTOR.services_by_name["Health"].full_name),
        server,
    )  # fmt: skip
    stopping = threading.Event()
    loader = _Loader(config, engine, health_servicer, stopping)
    if config.listen_after_load:
        loader.run()
    if config.tls_cert and config.tls_key:
        credentials = grpc.ssl_server_credentials(
            [(config.tls_key.read_bytes(), config.tls_cert.read_bytes())]
        )
        port = server.add_secure_port(config.address, credentials)
    else:
        port = server.add_insecure_port(config.address)
    if port == 0:
        raise InvalidInputError(f"cannot listen on {config.address}", field="address")
    loader.port = port
    server.start()

    metrics.track(
        lambda: float(engine.stats().articles) if engine.ready else 0.0,
        lambda: _snapshot_age(engine),
        engine.results.info,
        lambda: engine.live.lists.info(),
    )
    metrics_port = metrics.serve(config.metrics_port) if config.metrics_port is not None else None
    http = None
    if config.http_port is not None:
        api = HttpApi(
            servicer,
            lambda: engine.ready and not stopping.is_set(),
            metrics,
            token=config.auth_token,
            auth_reads=config.auth_reads,
            write_limiter=interceptor.write_limiter,
            event_limiter=interceptor.event_limiter,
            workers=config.workers,
            cors_origins=config.cors_origins,
            anonymous_writes=config.allow_anonymous_writes,
            allowed_hosts=config.allowed_hosts,
        )
        host = config.address.rsplit(":", 1)[0].strip("[]")
        http = HttpServer(api, host, config.http_port, config.grace_seconds, config.trusted_proxies)
    if not config.listen_after_load:
        threading.Thread(target=loader.run, name="index-loader", daemon=True).start()
    return RunningServer(
        server, port, engine, health_servicer, metrics, metrics_port, stopping, http
    )


class _Loader:
    """Loads the index (waiting for one to be published), warms the model, starts watching
    for new snapshots, then says SERVING."""

    def __init__(
        self, config: ServerConfig, engine: Engine, health_servicer: Any, stopping: Any
    ) -> None:
        self.config, self.engine, self.health, self.stopping = (
            config, engine, health_servicer, stopping
        )  # fmt: skip
        self.port = 0

    def run(self) -> None:
        config, engine = self.config, self.engine
        # Until an index loads (none published yet, or none loadable) keep looking, NOT_SERVING:
        # the server becomes SERVING by itself once `recommender index` publishes one.
        said = None
        while not engine.ready:
            try:
                engine.load()
            except Exception as exc:
                if str(exc) != said:  # say each new problem once, not every few seconds
                    expected = isinstance(exc, NotFoundError | SnapshotError)
                    log = _log.warning if expected else _log.exception
                    log("cannot serve %s yet (%s); looking again every %.1f s",
                        config.index_dir, exc, config.watch_interval)  # fmt: skip
                    said = str(exc)
                if self.stopping.wait(config.watch_interval):
                    return
        try:
            if config.warm_model:
                _ = engine.embedder  # text queries and upserts should not wait for the model
            engine.start_watching(config.watch_interval, config.follow_interval)
        except Exception:
            _log.exception("could not start serving the index in %s", config.index_dir)
            return
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        _log.info("serving %s%s", engine.snapshot.manifest.name,
                  f" on port {self.port}" if self.port else "")  # fmt: skip


def _add_servicer(servicer: RecommenderServicer, server: grpc.Server) -> None:
    """Register the service as the generated code does, but let a method answer with bytes
    already serialised (``Engine.related_encoded``), which are sent as they are."""
    service = pb.DESCRIPTOR.services_by_name["Recommender"]
    handlers = {
        method.name: grpc.unary_unary_rpc_method_handler(
            _parsing(getattr(servicer, method.name), getattr(pb, method.input_type.name)),
            request_deserializer=None,  # bytes: parsed in the call, see ``_parsing``
            response_serializer=_serialize,
        )
        for method in service.methods
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


def _parsing(method: Any, message_type: Any) -> Any:
    """``method`` called with its request parsed from the wire bytes. Parsing here, not in a
    gRPC deserializer, lets malformed bytes (random data, invalid UTF-8 in a string field)
    be an INVALID_ARGUMENT naming the message, after the token check, where a deserializer
    that raises makes gRPC answer INTERNAL and log a traceback."""
    name = message_type.DESCRIPTOR.name

    def call(request: bytes, context: Any) -> Any:
        try:
            parsed = message_type.FromString(request)
        except DecodeError as exc:
            raise InvalidInputError(f"not a valid {name} message: {exc}", field="request") from None
        return method(parsed, context)

    return call


def _serialize(message: Any) -> bytes:
    if isinstance(message, bytes):
        return message
    encoded: bytes = message.SerializeToString()
    return encoded


def _snapshot_age(engine: Engine) -> float:
    if not engine.ready:
        return 0.0
    built = datetime.fromisoformat(engine.snapshot.manifest.built_at)
    return max(0.0, time.time() - built.timestamp())


def serve_here(config: ServerConfig, label: str = "") -> int:
    """Run one server process until SIGTERM or SIGINT, then shut down gracefully
    (``run.serve`` chooses between this and several processes)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    running = create_server(config)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        _log.info("signal %d: shutting down (grace %.0fs)", signum, config.grace_seconds)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # one write: print() writes the line and its newline separately, and a log line of the
    # index loader's thread landing in between glued itself to the port a script reads here
    sys.stderr.write(
        f"recommender: listening on {config.address.rsplit(':', 1)[0]}:{running.port}{label}"
        + (f", HTTP/JSON on :{running.http_port}" if running.http_port else "")
        + (f", metrics on :{running.metrics_port}/metrics" if running.metrics_port else "")
        + "\n"
    )
    sys.stderr.flush()
    stop.wait()
    running.stop(config.grace_seconds)
    return 0
