"""Prometheus metrics, served on their own HTTP port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

# Website requests take milliseconds: resolve that range finely.
_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    """Request counts and latency per method and status, index size, snapshot age."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "recommender_requests",
            "gRPC requests by method and status code",
            ["method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "recommender_request_seconds",
            "gRPC request latency by method",
            ["method"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.index_size = Gauge(
            "recommender_index_articles", "searchable articles", registry=self.registry
        )
        self.snapshot_age = Gauge(
            "recommender_snapshot_age_seconds",
            "seconds since the serving snapshot was built",
            registry=self.registry,
        )

    def observe(self, method: str, code: str, seconds: float) -> None:
        """Count one request and its latency."""
        self.observer(method)(code, seconds)

    def observer(self, method: str) -> Callable[[str, float], None]:
        """``observe`` for one method, with its labelled series looked up once, not per call."""
        latency = self.latency.labels(method=method)
        counters: dict[str, Any] = {}

        def observe(code: str, seconds: float) -> None:
            counter = counters.get(code)
            if counter is None:
                counter = counters[code] = self.requests.labels(method=method, code=code)
            counter.inc()
            latency.observe(seconds)

        return observe

    def track(
        self,
        index_size: Callable[[], float],
        snapshot_age: Callable[[], float],
        result_cache: Callable[[], dict[str, int]] | None = None,
        lists: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        """Read the gauges (and the result cache's and stored lists' counts) from the engine
        at scrape time."""
        self.index_size.set_function(index_size)
        self.snapshot_age.set_function(snapshot_age)
        if result_cache is not None:
            self.registry.register(_ResultCacheCollector(result_cache))
        if lists is not None:
            self.registry.register(_ListsCollector(lists))

    def serve(self, port: int, address: str = "127.0.0.1") -> int:
        """Expose /metrics over HTTP; returns the port (useful with port 0)."""
        server, _ = start_http_server(port, addr=address, registry=self.registry)
        return int(server.server_port)


class _ListsCollector(Collector):
    """Stored lists waiting to be recomputed, and recomputed since the snapshot."""

    def __init__(self, info: Callable[[], dict[str, int]]) -> None:
        self.info = info

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        info = self.info()
        yield GaugeMetricFamily(
            "recommender_lists_pending", "stored lists changed by a write, ranked live until "
            "recomputed", value=info["pending"],
        )  # fmt: skip
        yield CounterMetricFamily(
            "recommender_lists_recomputed", "stored lists recomputed since the snapshot",
            value=info["recomputed"],
        )  # fmt: skip


class _ResultCacheCollector(Collector):
    """Hits, misses and entries of the engine's result cache, read at scrape time."""

    def __init__(self, info: Callable[[], dict[str, int]]) -> None:
        self.info = info

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        info = self.info()
        yield CounterMetricFamily(
            "recommender_result_cache_hits", "related answers served from the cache",
            value=info["hits"],
        )  # fmt: skip
        yield CounterMetricFamily(
            "recommender_result_cache_misses", "related article queries computed",
            value=info["misses"],
        )  # fmt: skip
        yield GaugeMetricFamily(
            "recommender_result_cache_entries", "answers held", value=info["entries"]
        )
