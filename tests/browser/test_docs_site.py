"""The documentation site as a reader sees it, in headless Chromium: pages render, panels show.

Builds the site (the tutorials come from the cache when the code has not
changed), serves it on 127.0.0.1, opens the home page, an API reference page
and a tutorial, checks what reads badly when it breaks (a page wider than the
window, a panel snapshot hidden or boxed as an admonition), and saves a
screenshot of each under ``test-artifacts/docs/``.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "docs"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    out = tmp_path_factory.mktemp("site")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRT_")} | {"NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def page(site_url: str, playwright_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    chromium = require_tool("/usr/bin/chromium", "the documentation site's browser test")
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = playwright_session.chromium.launch_persistent_context(
        str(tmp_path_factory.mktemp("chromium-profile")),
        executable_path=chromium,
        headless=True,
        viewport={"width": 1280, "height": 1000},
        args=ARGS,
    )
    tab = context.pages[0] if context.pages else context.new_page()
    tab.set_default_timeout(30_000)
    try:
        yield tab
    finally:
        context.close()


def _no_sideways_scroll(tab: Any) -> None:
    assert tab.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")


@pytest.mark.timeout(900)
def test_home_page_reads_in_a_browser(page: Any, site_url: str) -> None:
    page.goto(f"{site_url}/", wait_until="load")

    assert page.locator("article h1").first.inner_text().rstrip("¶") == "airt_nb"
    assert page.locator(".md-nav__link", has_text="Writing specs").first.is_visible()
    _no_sideways_scroll(page)
    page.screenshot(path=str(SHOTS / "home.png"))


def test_api_reference_shows_the_engine_and_its_methods(page: Any, site_url: str) -> None:
    page.goto(f"{site_url}/reference/engine/", wait_until="load")

    heading = page.locator('[id="airt_nb.Engine"]')
    assert heading.is_visible()
    assert page.locator('[id="airt_nb.Engine.start"]').count() == 1
    assert page.locator(".doc-signature").first.is_visible()  # the constructor's signature
    _no_sideways_scroll(page)
    page.screenshot(path=str(SHOTS / "api-engine.png"))


def test_tutorial_shows_the_run_panel_as_its_snapshot(page: Any, site_url: str) -> None:
    page.goto(f"{site_url}/tutorials/01-quickstart/", wait_until="load")

    snapshot = page.locator(".airt-snapshot.airt-panel").first
    snapshot.scroll_into_view_if_needed()
    assert snapshot.is_visible()
    assert snapshot.bounding_box()["height"] > 100
    assert "COMPLETED" in snapshot.inner_text()
    assert not page.locator(".airt-stale").first.is_visible()  # "saved view" is said once, on the index
    details = snapshot.locator("details").first
    assert details.evaluate("d => getComputedStyle(d).borderTopWidth") == "0px"  # not boxed as an admonition
    _no_sideways_scroll(page)
    page.screenshot(path=str(SHOTS / "tutorial-quickstart.png"))
