"""A demo news site with the "read also" block under every article (``make demo-web``).

It serves one page per article of a JSONL corpus (``/articles/<id>.html``: headline, date,
lead, body, and the snippet of ``snippet.html`` with the article's id) plus ``read-also.js``,
and starts ``recommender serve --http-port`` on the index with this site's origin allowed
(CORS). Open http://127.0.0.1:8000/articles/libya-security-memoranda.html.

    python examples/widget/demo.py --index-dir var/index [--port 8000] [--api-port 8080]
    python examples/widget/demo.py --api http://127.0.0.1:8080   # an API already running
"""

from __future__ import annotations

import argparse
import html
import http.server
import json
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from recommender.ingest.readers import read_articles
from recommender.ingest.records import Article

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def load_articles(corpus: Path) -> dict[str, Article]:
    """The corpus's articles by id."""
    return {a.id: a for a in read_articles(corpus) if isinstance(a, Article)}


def article_page(article: Article, api: str, block_attributes: str = "") -> str:
    """One article's page with the block under it (``block_attributes``: more data-*
    attributes of the block, as a site would set them)."""
    direction = "rtl" if article.lang in ("ar", "fa", "he", "ur") else "ltr"
    date = article.published_at.date().isoformat() if article.published_at else ""
    body = "".join(f"<p>{html.escape(p)}</p>" for p in article.body.split("\n") if p.strip())
    return f"""<!DOCTYPE html>
<html lang="{html.escape(article.lang)}" dir="{direction}">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{html.escape(article.title)}</title>
  <link rel="canonical" href="{html.escape(article.url)}">
  <style>
    body {{ max-width: 46em; margin: 2em auto; padding: 0 1em; font: 17px/1.6 Georgia, serif; }}
    header a {{ font: 14px system-ui, sans-serif; color: #b3261e; }}
    .meta {{ color: #6b6b6b; font: 14px system-ui, sans-serif; }}
    .lead {{ font-size: 1.1em; font-weight: 600; }}
  </style>
</head>
<body>
  <header><a href="/" dir="ltr">← Sample news site (recommender demo)</a></header>
  <article>
    <h1>{html.escape(article.title)}</h1>
    <p class="meta">{html.escape(article.source)} · {html.escape(article.section)} · {date}</p>
    <p class="lead">{html.escape(article.lead)}</p>
    {body}
  </article>
  <div data-recommender-api="{html.escape(api)}" data-article-id="{html.escape(article.id)}"
       data-k="5" data-link-template="/articles/{{id}}.html" {block_attributes}></div>
  <script src="/read-also.js" defer></script>
</body>
</html>
"""


def index_page(articles: dict[str, Article]) -> str:
    """Every article as a link."""
    items = "".join(
        f'<li><a href="/articles/{urllib.parse.quote(a.id)}.html" lang="{a.lang}" dir="auto">'
        f"{html.escape(a.title)}</a> <small>{a.lang}</small></li>"
        for a in articles.values()
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>recommender demo'
        f"</title></head><body><h1>Sample news site</h1><ul>{items}</ul></body></html>"
    )


class DemoSite:
    """The site's HTTP server (a thread); ``api`` is the recommender HTTP API's base URL."""

    def __init__(
        self, articles: dict[str, Article], api: str = "", block_attributes: str = ""
    ) -> None:
        self.articles = articles
        self.api = api
        self.block_attributes = block_attributes
        self.server: http.server.ThreadingHTTPServer | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the standard library names it
                path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                if path == "/read-also.js":
                    return self.answer((HERE / "read-also.js").read_bytes(), "text/javascript")
                if path == "/":
                    return self.answer(index_page(site.articles).encode(), "text/html")
                if path.startswith("/articles/") and path.endswith(".html"):
                    article = site.articles.get(path[len("/articles/") : -len(".html")])
                    if article is not None:
                        page = article_page(article, site.api, site.block_attributes).encode()
                        return self.answer(page, "text/html")
                return self.answer(b"not found", "text/plain", 404)

            def answer(self, body: bytes, kind: str, status: int = 200) -> None:
                self.send_response(status)
                self.send_header("Content-Type", f"{kind}; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the demo prints what matters

        self.server = http.server.ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return int(self.server.server_address[1])

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _wait_healthy(api: str, process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"recommender serve exited ({process.returncode})")
        try:
            with urllib.request.urlopen(f"{api}/healthz", timeout=2) as response:
                if json.load(response).get("status") == "SERVING":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{api}/healthz did not answer SERVING within {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-dir", default="var/index", help="index to serve")
    parser.add_argument("--corpus", default=str(ROOT / "data" / "articles.jsonl"))
    parser.add_argument("--port", type=int, default=8000, help="the demo site's port")
    parser.add_argument("--api-port", type=int, default=8080, help="the HTTP API's port")
    parser.add_argument("--api", help="use this running HTTP API instead of starting one")
    args = parser.parse_args()

    site = DemoSite(load_articles(Path(args.corpus)))
    port = site.start("127.0.0.1", args.port)
    origin = f"http://127.0.0.1:{port}"
    process = None
    if args.api:
        site.api = args.api.rstrip("/")
    else:
        site.api = f"http://127.0.0.1:{args.api_port}"
        process = subprocess.Popen(
            [sys.executable, "-m", "recommender", "serve", "--index-dir", args.index_dir,
             "--address", "127.0.0.1:0", "--http-port", str(args.api_port),
             "--cors-origin", origin, "--metrics-port", "-1", "--processes", "1"],
        )  # fmt: skip
    try:
        _wait_healthy(site.api, process, timeout=180)
        print(f"\nDemo site on {origin}/ , the HTTP API on {site.api}. Open:\n"
              f"  {origin}/articles/libya-security-memoranda.html\n(Ctrl-C to stop)",
              flush=True)  # fmt: skip
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        site.stop()
        if process is not None:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
