"""A small Python client for the gRPC service.

Answers are the protobuf messages; ``recommender.service.convert`` turns them into the
engine's own objects (``response_from_pb``), as the CLI does.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, cast

import grpc

from recommender.v1 import recommender_pb2 as pb
from recommender.v1 import recommender_pb2_grpc as pb_grpc


def wait_until_serving(channel: grpc.Channel, timeout: float = 60.0, service: str = "") -> None:
    """Block until the server's health check says SERVING for ``service`` (a server loads its
    index after it starts listening); TimeoutError after ``timeout`` seconds."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            request = health_pb2.HealthCheckRequest(service=service)
            if stub.Check(request, timeout=2).status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass  # not listening yet
        time.sleep(0.1)
    raise TimeoutError(f"the server did not become SERVING within {timeout:.0f} s")


class RecommenderClient:
    """Calls ``recommender.v1.Recommender``; ``token`` is sent as a bearer token."""

    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        root_certificates: bytes | None = None,
        timeout: float = 10.0,
        own_connection: bool = False,
    ) -> None:
        # own_connection: not shared with other channels to the same address (gRPC shares
        # by default), so that clients reach different processes of `serve --processes`
        options = [("grpc.use_local_subchannel_pool", 1)] if own_connection else []
        if root_certificates is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self.channel = grpc.secure_channel(address, credentials, options=options)
        else:
            self.channel = grpc.insecure_channel(address, options=options)
        self.stub = pb_grpc.RecommenderStub(self.channel)  # type: ignore[no-untyped-call]
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.timeout = timeout

    def _call(self, method: str, request: Any) -> Any:
        return getattr(self.stub, method)(request, timeout=self.timeout, metadata=self.metadata)

    def related(
        self,
        *,
        article_id: str | None = None,
        text: str | None = None,
        positive_ids: Sequence[str] = (),
        negative_ids: Sequence[str] = (),
        k: int = 10,
        filters: pb.Filters | None = None,
        options: pb.RankingOptions | None = None,
        published_at: str = "",
    ) -> pb.RelatedResponse:
        """Related stories by article id, raw text (dated by ``published_at``) or examples."""
        request = pb.RelatedRequest(
            k=k, filters=filters, options=options, published_at=published_at
        )
        if article_id is not None:
            request.article_id = article_id
        elif text is not None:
            request.text = text
        else:
            request.examples.positive_ids.extend(positive_ids)
            request.examples.negative_ids.extend(negative_ids)
        return cast(pb.RelatedResponse, self._call("Related", request))

    def recommend(
        self,
        history_ids: Sequence[str] = (),
        k: int = 10,
        filters: pb.Filters | None = None,
        reader: str = "",
    ) -> pb.RelatedResponse:
        """Recommendations from a reading history (oldest first), after the reads recorded
        for ``reader`` (a reader key, as in ``record_events``)."""
        request = pb.RecommendRequest(history_ids=history_ids, k=k, filters=filters, reader=reader)
        return cast(pb.RelatedResponse, self._call("Recommend", request))

    def get_article(self, article_id: str) -> pb.Article:
        """One stored article."""
        return cast(pb.Article, self._call("GetArticle", pb.GetArticleRequest(id=article_id)))

    def upsert(self, articles: Sequence[pb.Article | dict[str, Any]]) -> pb.UpsertResponse:
        """Add or replace articles (dicts in the article schema or ``pb.Article``)."""
        messages = [a if isinstance(a, pb.Article) else pb.Article(**a) for a in articles]
        return cast(pb.UpsertResponse, self._call("Upsert", pb.UpsertRequest(articles=messages)))

    def delete(self, ids: Sequence[str]) -> pb.DeleteResponse:
        """Remove articles."""
        return cast(pb.DeleteResponse, self._call("Delete", pb.DeleteRequest(ids=ids)))

    def record_events(self, events: Sequence[pb.Event | dict[str, Any]]) -> int:
        """Report what readers were shown, clicked and read (dicts in the event schema or
        ``pb.Event``); returns how many were recorded."""
        messages = [e if isinstance(e, pb.Event) else pb.Event(**e) for e in events]
        request = pb.RecordEventsRequest(events=messages)
        return int(self._call("RecordEvents", request).recorded)

    def stats(self) -> pb.StatsResponse:
        """The serving snapshot and counts."""
        return cast(pb.StatsResponse, self._call("Stats", pb.StatsRequest()))

    def wait_until_serving(self, timeout: float = 60.0) -> None:
        """Block until the server says SERVING; see ``wait_until_serving``."""
        wait_until_serving(self.channel, timeout)

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def __enter__(self) -> RecommenderClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
