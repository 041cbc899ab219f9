"""The "read also" block in a real headless Chromium, against a real server's HTTP API.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make test`` installs them with apt-get);
skipped, saying so, only where they cannot be installed. ``RECOMMENDER_WIDGET_SCREENSHOT=path``
saves the seed article's page as a PNG (``make widget-screenshot``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import time
import urllib.request

import pytest
from conftest import ROOT, SAMPLE

from recommender.config import ServerConfig
from recommender.embedding import Embedder
from recommender.engine import Engine
from recommender.service.server import create_server

pytestmark = pytest.mark.slow
SEED = "libya-security-memoranda"
TRIPOLI, WUHAN = "german-fm-tripoli-visit", "wuhan-life-returns"


def _demo_module():
    spec = importlib.util.spec_from_file_location("widget_demo", ROOT / "examples/widget/demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def browser():
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("chromium and chromium-driver are not installed (make test installs them "
                    "with apt-get; it could not here)")  # fmt: skip
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    arguments = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=900,1000", "--lang=en-GB")  # fmt: skip
    for argument in arguments:
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def site(sample_index, model, tmp_path_factory):
    demo = _demo_module()
    site = demo.DemoSite(demo.load_articles(SAMPLE))
    origin = f"http://127.0.0.1:{site.start()}"
    index_dir = tmp_path_factory.mktemp("widget") / "index"
    shutil.copytree(sample_index, index_dir)
    config = ServerConfig(index_dir=index_dir, address="127.0.0.1:0", metrics_port=None,
                          http_port=0, cors_origins=(origin,))  # fmt: skip
    running = create_server(config, Engine(index_dir, embedder=Embedder(model=model),
                                           writable=True))  # fmt: skip
    site.api = f"http://127.0.0.1:{running.http_port}"
    site.running = running
    deadline = time.monotonic() + 60
    while not running.engine.ready:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    yield site, origin, demo
    running.stop(grace=0)
    site.stop()


def _links(browser, timeout=30.0):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".read-also li [data-id]")
    )
    return browser.find_elements(By.CSS_SELECTOR, ".read-also li [data-id]")


def test_the_seed_page_shows_the_tripoli_visit_and_not_wuhan(browser, site):
    from selenium.webdriver.common.by import By

    _, origin, _ = site
    browser.get(f"{origin}/articles/{SEED}.html")
    links = _links(browser)
    # (the seed's block is ranked from the snapshot's stored list, as every page view is)
    ids = [link.get_attribute("data-id") for link in links]
    assert len(ids) == 5 and TRIPOLI in ids and WUHAN not in ids and SEED not in ids
    tripoli = links[ids.index(TRIPOLI)]
    assert tripoli.get_attribute("href") == f"{origin}/articles/{TRIPOLI}.html"
    assert "طرابلس" in tripoli.text  # the title as text, in its own script
    assert tripoli.get_attribute("lang") == "ar"
    meta = tripoli.find_element(By.XPATH, "following-sibling::span").text
    assert meta.startswith("AR · ") and "2020" in meta  # language and date
    heading = browser.find_element(By.CSS_SELECTOR, ".read-also h2").text
    assert heading.lower() == "read also"
    # the same story in other languages, linked under the list
    copies = browser.find_elements(By.CSS_SELECTOR, ".read-also-langs [data-id]")
    assert "libya-memoranda-en" in [c.get_attribute("data-id") for c in copies]
    assert "EN" in [c.text for c in copies]
    if os.environ.get("RECOMMENDER_WIDGET_SCREENSHOT"):
        browser.save_screenshot(os.environ["RECOMMENDER_WIDGET_SCREENSHOT"])
    # a click follows the link to the related story's page, which has its own block
    tripoli.click()
    assert SEED in [link.get_attribute("data-id") for link in _links(browser)]


def _hidden_and_empty(browser, origin, wait=8.0):
    from selenium.webdriver.common.by import By

    browser.get(f"{origin}/articles/{SEED}.html")
    block = browser.find_element(By.CSS_SELECTOR, "[data-recommender-api]")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and block.get_attribute("hidden") is None:
        time.sleep(0.1)
    return block.get_attribute("hidden") is not None and block.get_attribute("innerHTML") == ""


def test_the_block_degrades_to_nothing_on_error_and_on_timeout(browser, site):
    _, _, demo = site
    articles = demo.load_articles(SAMPLE)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers: the block's timeout must fire
    broken = [
        demo.DemoSite(articles, f"http://127.0.0.1:{closed.getsockname()[1]}"),
        demo.DemoSite(articles, f"http://127.0.0.1:{silent.getsockname()[1]}"),
    ]
    try:
        for other in broken:
            origin = f"http://127.0.0.1:{other.start()}"
            assert _hidden_and_empty(browser, origin), other.api
        # an origin the API does not allow (CORS) is an error the page survives too
        stranger = demo.DemoSite(articles, site[0].api)
        origin = f"http://127.0.0.1:{stranger.start()}"
        broken.append(stranger)
        assert _hidden_and_empty(browser, origin)
    finally:
        for other in broken:
            other.stop()
        closed.close()
        silent.close()


def _events(running, kind: str) -> list:
    return [e for e in running.engine.events.log.events() if e.kind == kind]


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the expected events never arrived"
        time.sleep(0.1)


def test_the_block_reports_what_was_seen_and_clicked(browser, site):
    from selenium.webdriver.common.by import By

    from recommender.storage.schema import int_id

    demo_site, origin, _ = site
    running = demo_site.running
    browser.set_window_size(900, 350)  # the block starts below the fold
    try:
        shown_before = len(_events(running, "impression"))
        reads_before = len(_events(running, "read"))
        browser.get(f"{origin}/articles/{SEED}.html")
        _wait_for(lambda: len(_events(running, "read")) == reads_before + 1)  # the page view
        _links(browser)
        time.sleep(1.0)
        assert len(_events(running, "impression")) == shown_before, "reported before it was seen"
        block = browser.find_element(By.CSS_SELECTOR, ".read-also")
        for _ in range(3):  # into view, away, and back: still one impression per page view
            browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", block)
            time.sleep(0.5)
            browser.execute_script("window.scrollTo(0, 0);")
            time.sleep(0.3)
        _wait_for(lambda: len(_events(running, "impression")) == shown_before + 1)
        time.sleep(0.5)
        impressions = _events(running, "impression")
        assert len(impressions) == shown_before + 1
        links = _links(browser)
        ids = [link.get_attribute("data-id") for link in links]
        assert impressions[-1].ids == tuple(int_id(i) for i in ids)
        assert impressions[-1].source == int_id(SEED)
        clicks_before = len(_events(running, "click"))
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", links[2])
        links[2].click()
        _wait_for(lambda: len(_events(running, "click")) == clicks_before + 1)
        click = _events(running, "click")[-1]
        assert (click.source, click.target, click.position) == (int_id(SEED), int_id(ids[2]), 2)
        assert click.reader == impressions[-1].reader  # one reader key across page views
        with running.engine.events.signals() as signals:
            assert signals.clicks(int_id(ids[2]), time.time()) > 0
            assert int_id(ids[2]) in signals.history(click.reader)
        with urllib.request.urlopen(f"{demo_site.api}/v1/stats", timeout=10) as answer:
            counts = json.loads(answer.read())["events"]
        assert int(counts["click"]) >= 1 and int(counts["impression"]) >= 1
    finally:
        browser.set_window_size(900, 1000)


def test_events_off_reports_nothing_and_stores_no_key(browser, site):
    demo_site, origin, _ = site
    running = demo_site.running
    browser.get(f"{origin}/")
    browser.execute_script("window.localStorage.clear()")
    browser.delete_all_cookies()
    demo_site.block_attributes = 'data-events="off"'
    try:
        before = {kind: len(_events(running, kind)) for kind in ("read", "impression", "click")}
        browser.get(f"{origin}/articles/{SEED}.html")
        links = _links(browser)
        links[0].click()
        _links(browser)
        time.sleep(1.5)
        after = {kind: len(_events(running, kind)) for kind in ("read", "impression", "click")}
        assert after == before
        assert browser.execute_script("return window.localStorage.length") == 0
        assert "recommender-reader" not in browser.execute_script("return document.cookie")
    finally:
        demo_site.block_attributes = ""
