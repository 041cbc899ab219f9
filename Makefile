# Two commands for a new user: `make serve` and `make test`. Both build .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch that lies on our machines' disk; a looser spec makes pip download
# several GB of CUDA libraries. Override on a machine with a GPU: make TORCH_SPEC=torch
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
# The exact versions the tests pass with (pip constraints); `make lock` refreshes it.
# LOCK= resolves pyproject.toml's ranges instead (another platform, a newer stack).
LOCK ?= requirements.lock
CONSTRAINTS := $(if $(LOCK),-c $(LOCK))
INDEX_DIR ?= var/index
ADDRESS ?= 127.0.0.1:50051
HTTP_PORT ?= 8080

.PHONY: venv lock test lint unit unit-fast serve demo demo-web test-deps widget-screenshot bench-http protos quality quality-models story-pairs ant-index bench bench-quick bench-encode bench-service loadgen-deps bench-reindex bench-related bench-writes bench-events quality-clicks text-recipes clean

venv: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip $(CONSTRAINTS)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)" $(CONSTRAINTS)
	$(PY) -m pip install --quiet -e ".[service,dev,bench,ray]" $(CONSTRAINTS)
	@touch $(STAMP)

# Re-resolve pyproject.toml's ranges in a scratch environment and write requirements.lock
lock:
	PYTHON=$(PYTHON) TORCH_SPEC="$(TORCH_SPEC)" scripts/lock.sh

test: lint unit

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

# Test files run on TEST_WORKERS processes (pytest-xdist, a file per worker: module fixtures
# are built once); TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
unit: $(STAMP) test-deps
	$(VENV)/bin/pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

# System packages tests drive: Debian's chromium + chromium-driver (the browser test of the
# "read also" block) and wrk (bench_http.py's smoke test). Where they cannot be installed (no
# root, no package mirror) those tests are skipped and say why.
TEST_PACKAGES := chromium chromium-driver wrk
test-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v wrk >/dev/null || \
		DEBIAN_FRONTEND=noninteractive apt-get install -y $(TEST_PACKAGES) >/dev/null || \
		(apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y \
		$(TEST_PACKAGES) >/dev/null) || \
		echo "$(TEST_PACKAGES) could not be installed: the tests that need them will be skipped"

# The tests that need no model and start no process (seconds): for the edit-test loop
unit-fast: $(STAMP)
	$(VENV)/bin/pytest -m "not slow"

serve: $(STAMP)
	@# incremental: embeds nothing when data/ is unchanged, rebuilds after an upgrade
	$(VENV)/bin/recommender index data/articles.jsonl --index-dir $(INDEX_DIR) --quiet
	@echo ""
	@echo "Serving $(INDEX_DIR) on $(ADDRESS) (Ctrl-C to stop). From another terminal:"
	@echo "  $(VENV)/bin/recommender related --server $(ADDRESS) --id libya-security-memoranda -k 5"
	@echo "  grpcurl -plaintext -d '{\"article_id\": \"libya-security-memoranda\", \"k\": 5}' $(ADDRESS) recommender.v1.Recommender/Related"
	@echo "  curl 'http://127.0.0.1:$(HTTP_PORT)/v1/articles/libya-security-memoranda/related?k=5'"
	@echo "  health: grpcurl -plaintext $(ADDRESS) grpc.health.v1.Health/Check; metrics: http://127.0.0.1:9464/metrics (one port per process: 9465, ...)"
	@echo ""
	$(VENV)/bin/recommender serve --index-dir $(INDEX_DIR) --address $(ADDRESS) --http-port $(HTTP_PORT)

# A sample news site with the "read also" block (examples/widget) under every article, on
# http://127.0.0.1:8000/, calling the HTTP API of the sample index on port $(HTTP_PORT)
demo-web: $(STAMP)
	$(VENV)/bin/recommender index data/articles.jsonl --index-dir $(INDEX_DIR) --quiet
	$(PY) examples/widget/demo.py --index-dir $(INDEX_DIR) --api-port $(HTTP_PORT)

# docs/read-also-demo.png: the seed article's page in headless Chromium (the browser test)
widget-screenshot: $(STAMP) test-deps
	RECOMMENDER_WIDGET_SCREENSHOT=docs/read-also-demo.png $(VENV)/bin/pytest -q \
		tests/test_widget.py -k seed_page

demo: $(STAMP)
	$(VENV)/bin/recommender index data/articles.jsonl --index-dir var/demo
	$(VENV)/bin/recommender related --index-dir var/demo --id libya-security-memoranda -k 10

# Everything: the ANN core at 100k and 1M, the service, encoding, reindexing (about 45 minutes
# on 2 cores once var/ant exists; its first build adds about 7 minutes).
bench: $(STAMP) ant-index
	@date -u +"bench started %FT%TZ"
	$(PY) benchmarks/bench_ann.py
	$(PY) benchmarks/bench_service.py
	$(PY) benchmarks/bench_encode.py
	$(PY) benchmarks/bench_reindex.py --limit 10000 --model use-multilingual-v3 --out benchmarks/results/reindex-10k.json
	@date -u +"bench finished %FT%TZ"

# The ANT corpus plus data/ indexed into var/ant, what the ANT rows of bench_ann.py and
# bench_service.py use (incremental: seconds when nothing changed; skipped without the corpus)
ANT_CORPUS ?= ../shared/eval/ant-arabic-news.jsonl.gz
ant-index: $(STAMP)
	@if [ -f "$(ANT_CORPUS)" ]; then \
		$(VENV)/bin/recommender index "$(ANT_CORPUS)" data/articles.jsonl --index-dir var/ant --quiet; \
	else echo "$(ANT_CORPUS) not found: benchmarks skip their ANT rows"; fi

# The ANN core at N=100k with fewer sweeps (under 5 minutes): benchmarks/results/ann-quick.json
bench-quick: $(STAMP)
	$(PY) benchmarks/bench_ann.py --quick

# The HTTP/JSON API under wrk beside a bare uvicorn + Starlette server: results/http.json
bench-http: $(STAMP) ant-index
	@command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >/dev/null
	$(PY) benchmarks/bench_http.py

bench-service: $(STAMP) ant-index loadgen-deps
	$(PY) benchmarks/bench_service.py

# bench_service.py's C load generator (benchmarks/loadgen/grpc_load.c) needs a C compiler and
# libnghttp2's headers; without them the benchmark runs its Python client only
loadgen-deps:
	@test -f /usr/include/nghttp2/nghttp2.h || DEBIAN_FRONTEND=noninteractive apt-get install -y \
		--no-install-recommends libnghttp2-dev gcc libc6-dev >/dev/null || \
		echo "libnghttp2-dev could not be installed: bench_service.py uses its Python client only"

# Live writes on a copy of var/ant: keeping stored lists fresh per upsert, and read latency
# after 1,000 / 10,000 / 100,000 upserts (about 45 minutes): results/writes.json
bench-writes: $(STAMP) ant-index
	$(PY) benchmarks/bench_writes.py

# In-process latency of Related by id on ANT + data/ (uncached, one thread): results/related-ant.json
bench-related: $(STAMP) ant-index
	$(PY) benchmarks/bench_related.py --index-dir var/ant --out benchmarks/results/related-ant.json

bench-encode: $(STAMP)
	$(PY) benchmarks/bench_encode.py

# USE with the test suite's kept ANT vectors when there are some (the cold run then measures
# indexing, not the model; without them it embeds ANT first, ~10 min)
ANT_VECTORS := $(wildcard $(or $(RECOMMENDER_CACHE),$(HOME)/.cache/recommender)/test-embeddings/ant-and-data.sqlite)
bench-reindex: $(STAMP)
	$(PY) benchmarks/bench_reindex.py --model use-multilingual-v3 $(if $(ANT_VECTORS),--seed-cache $(ANT_VECTORS))

protos: $(STAMP)
	PYTHON=$(PY) scripts/gen_protos.sh

quality: $(STAMP)
	$(PY) benchmarks/quality.py

# USE, multilingual-e5-small and their fusion side by side (docs/quality.md, "Models"; about
# 40 minutes on 2 cores with an empty embedding cache, e5 embedding most of it)
quality-models: $(STAMP)
	$(PY) benchmarks/quality_models.py

# The primary relevance objective: each built-in model on human-judged same-story pairs of
# whole articles (../shared/eval/story-pairs.jsonl), as shipped and along the dense weight
# (docs/quality.md, "Story-level pairs"; about 10 minutes on 2 cores with an empty cache)
story-pairs: $(STAMP)
	$(PY) benchmarks/story_pairs.py

# The click ranker on simulated readers and the hand-written MIND sample (docs/quality.md,
# "Clicks"; a few minutes)
quality-clicks: $(STAMP)
	$(PY) benchmarks/quality_clicks.py

# A million reader events: ingest, signals, Recommend with the ranker, page views while events
# arrive (benchmarks/README.md, "Reader events"; about 10 minutes)
bench-events: $(STAMP)
	$(PY) benchmarks/bench_events.py

text-recipes: $(STAMP)
	$(PY) benchmarks/text_recipes.py

clean:
	rm -rf $(VENV) .cache .mypy_cache .ruff_cache .pytest_cache
