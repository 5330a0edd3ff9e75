"""A real JupyterLab on 127.0.0.1 and headless Chromium (Playwright) for the browser suite.

One Lab server and one page serve the whole suite (the first page load costs
7-9 s, each further notebook 2-4 s).  Each test writes its own notebook into
its own folder under the server's root, so every test has its own
``./airt.db``; after a test its notebooks are closed and their kernels shut
down.  The server runs in its own process group and is killed with it, also
when pytest is terminated.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
# Without these, Chromium's background connections are refused on a closed network, many at a time.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Lab:
    url: str
    root: Path
    env: dict[str, str]

    def api(self, method: str, path: str) -> Any:
        request = urllib.request.Request(f"{self.url}{path}", method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def notebook(self, folder: str, cells: list[str]) -> str:
        """Write a notebook of code cells into its own folder; returns its path relative to the root."""
        (self.root / folder).mkdir(parents=True, exist_ok=True)
        book = nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell(c) for c in cells],
            metadata={"kernelspec": KERNELSPEC, "language_info": {"name": "python"}},
        )
        nbformat.write(book, self.root / folder / f"{folder}.ipynb")
        return f"{folder}/{folder}.ipynb"


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_tool(CHROMIUM, "the browser suite (JupyterLab in headless Chromium)")
    home = tmp_path_factory.mktemp("lab-home")
    root = tmp_path_factory.mktemp("lab-root")
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AIRT_USER": "reviewer",
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "IPYTHONDIR": str(home / "ipython"),
    }
    for var in ("AIRT_DB", "AIRT_WEBHOOK_URL", "AIRT_WEBHOOK_SECRET", "AIRT_POLICY"):
        env.pop(var, None)
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--IdentityProvider.token=",
        "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={root}",
        "--ServerApp.allow_root=True", "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
        "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    # No "get notified about Jupyter news?" toast over the screenshots.
    settings = home / "settings/@jupyterlab/apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    log = (home / "lab.log").open("w")
    server = subprocess.Popen(command, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill_server(*_: Any) -> None:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()

    previous = signal.signal(signal.SIGTERM, lambda *a: (kill_server(), sys.exit(143)))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            kill_server()
            pytest.fail(f"JupyterLab did not start; see {home / 'lab.log'}:\n{(home / 'lab.log').read_text()[-3000:]}")
        time.sleep(0.2)
    try:
        yield Lab(url, root, env)
    finally:
        kill_server()
        log.close()
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="package")
def playwright_session() -> Iterator[Any]:
    """One Playwright driver for the browser suite: the sync API refuses a second one while the first runs.

    Package scope, not session: while it runs, the main thread has an asyncio loop marked as running,
    and the tests after this package (``asyncio.run`` in a notebook-like caller) must not see it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser_page(lab: Lab, playwright_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    chromium = require_tool(CHROMIUM, "the browser suite (JupyterLab in headless Chromium)")
    ARTIFACTS.mkdir(exist_ok=True)
    context = playwright_session.chromium.launch_persistent_context(
        str(tmp_path_factory.mktemp("chromium-profile")),
        executable_path=chromium,
        headless=True,
        viewport={"width": 1280, "height": 1600},
        args=CHROMIUM_ARGS,
    )
    page = context.pages[0] if context.pages else context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{lab.url}/lab", wait_until="domcontentloaded")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=60_000)
    page.wait_for_selector(".jp-LabShell", timeout=60_000)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def page(browser_page: Any, lab: Lab) -> Iterator[Any]:
    """The shared page; what a test opened is closed and its kernels shut down afterwards."""
    yield browser_page
    browser_page.evaluate(
        """() => {
            for (const w of Array.from(window.jupyterapp.shell.widgets('main'))) {
                if (w.context) { w.context.model.dirty = false; }
                w.dispose();
            }
        }"""
    )
    for session in lab.api("GET", "/api/sessions"):
        lab.api("DELETE", f"/api/sessions/{session['id']}")
