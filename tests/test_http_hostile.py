"""Hostile and careless HTTP clients (issue 25): who may write without a token, which client a
forwarded address names, which Host is answered, and requests that used to get a non-JSON or
inconsistent answer. Real servers on real ports."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from test_http import call, wait_healthy

from recommender.config import ServerConfig
from recommender.embedding import Embedder
from recommender.engine import Engine
from recommender.service.server import create_server

pytestmark = pytest.mark.slow
TOKEN = "guard-s3cret"
EVIL = "https://evil.example"
ARTICLE = {"id": "written-over-http", "title": "Ports reopen along the Libyan coast"}


@pytest.fixture(scope="module")
def serving(sample_index, model, tmp_path_factory) -> Callable:
    """Start a server on a copy of the sample index with ``settings``; yields its HTTP base."""

    @contextmanager
    def start(**settings) -> Iterator[str]:
        index_dir = tmp_path_factory.mktemp("guards") / "index"
        shutil.copytree(sample_index, index_dir)
        config = ServerConfig(index_dir=index_dir, address="127.0.0.1:0", metrics_port=None,
                              http_port=0, **settings)  # fmt: skip
        running = create_server(config, Engine(index_dir, embedder=Embedder(model=model),
                                               writable=True))  # fmt: skip
        base = f"http://127.0.0.1:{running.http_port}"
        wait_healthy(base)
        try:
            yield base
        finally:
            running.stop(grace=0)

    return start


def test_without_a_token_http_writes_are_refused_unless_allowed(serving):
    with serving() as base:
        # what a page on any site can send to a loopback server: no preflight for text/plain
        got, body, _ = call(base, "/v1/articles", "POST", {"articles": [ARTICLE]},
                            headers={"Origin": EVIL, "Content-Type": "text/plain"})  # fmt: skip
        assert got == 403 and body["error"]["status"] == "PERMISSION_DENIED"
        assert "--auth-token-file" in body["error"]["message"]
        got, _, _ = call(base, f"/v1/articles/{ARTICLE['id']}", "DELETE")
        assert got == 403
        assert call(base, f"/v1/articles/{ARTICLE['id']}")[0] == 404  # nothing was written
        assert call(base, "/v1/articles/libya-security-memoranda/related?k=3")[0] == 200
    with serving(allow_anonymous_writes=True) as base:
        got, body, _ = call(base, "/v1/articles", "POST", {"articles": [ARTICLE]})
        assert got == 200 and body["added"] == 1


def test_a_forwarded_address_is_believed_only_from_a_trusted_proxy(serving):
    """300 token-bearing deletes, each claiming another X-Forwarded-For: one client to the
    write limit unless the connection comes from a --trusted-proxy."""

    def passed(base: str) -> int:
        count = 0
        for n in range(60):
            headers = {"Authorization": f"Bearer {TOKEN}", "X-Forwarded-For": f"10.0.{n}.1"}
            got, _, _ = call(base, f"/v1/articles/no-such-{n}", "DELETE", headers=headers)
            assert got in (200, 404, 429), got
            count += got != 429
        return count

    limits = {"auth_token": TOKEN, "write_rate": 0.5, "write_burst": 5}
    with serving(**limits) as base:
        assert passed(base) <= 10  # the burst and what the rate refills, not 60
    with serving(**limits, trusted_proxies=("127.0.0.1",)) as base:
        assert passed(base) == 60  # behind a proxy each forwarded client has its own limit


def test_a_foreign_host_gets_421_when_hosts_are_listed(serving):
    with serving(allowed_hosts=("news.example.org", "127.0.0.1")) as base:
        path = "/v1/articles/libya-security-memoranda/related?k=3"
        got, body, _ = call(base, path, headers={"Host": "evil.example:8080"})
        assert got == 421 and body["error"]["status"] == "MISDIRECTED_REQUEST"
        assert call(base, path, headers={"Host": "news.example.org"})[0] == 200
        assert call(base, path)[0] == 200  # 127.0.0.1:PORT, as urllib sends it


def test_odd_requests_get_the_json_answers_their_siblings_get(serving):
    with serving(auth_token=TOKEN) as base:
        # an id with a newline matches no route: still the JSON error, not plain text
        got, body, headers = call(base, "/v1/articles/a%0Ab/related")
        assert got == 404 and body["error"]["status"] == "NOT_FOUND"
        assert headers["content-type"].startswith("application/json")
        # "k": null is "no value", as an absent k: the default 10
        related = {"article_id": "libya-security-memoranda"}
        got, body, _ = call(base, "/v1/related", "POST", {**related, "k": None})
        assert got == 200 and len(body["results"]) == 10
        # a language that is not a code is refused in the query as in the body
        got, body, _ = call(base, "/v1/articles/libya-security-memoranda/related?lang=english")
        assert got == 400 and "filters.langs" in body["error"]["message"]
        filters = {"filters": {"langs": ["english"]}}
        got, body, _ = call(base, "/v1/related", "POST", {**related, **filters})
        assert got == 400 and "filters.langs" in body["error"]["message"]


def test_a_client_leaving_mid_body_is_cancelled_not_internal(serving, caplog):
    with serving(auth_token=TOKEN) as base:
        host, port = base.removeprefix("http://").split(":")
        for _ in range(20):
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                sock.sendall(b"POST /v1/related HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                             b'{"text": "half a bo')  # fmt: skip
        time.sleep(0.5)
        assert call(base, "/v1/stats")[0] == 200  # and the server answers on
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert not tracebacks, [r.getMessage() for r in tracebacks][:3]


def test_never_ended_bodies_at_the_cap_give_way_to_whole_requests(serving, monkeypatch):
    """At the connection cap, connections that sent a head but never end their body are
    evicted for a new client's whole request, as idle ones are (they used to fill the cap)."""
    import recommender.service.httpserver as httpserver

    monkeypatch.setattr(httpserver, "connection_cap", lambda: 16)
    with serving() as base:
        host, port = base.removeprefix("http://").split(":")
        held = []
        try:
            for _ in range(24):  # more than the cap, every one owing 99,990 bytes of body
                sock = socket.create_connection((host, int(port)), timeout=10)
                sock.sendall(b"POST /v1/related HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
                             b'{"text": "')  # fmt: skip
                held.append(sock)
            time.sleep(0.5)
            for _ in range(5):
                assert call(base, "/v1/articles/libya-security-memoranda/related?k=3")[0] == 200
        finally:
            for sock in held:
                sock.close()
