"""Notebook 06 in a real browser, as a student uses it: JupyterLab in headless Chromium
(Playwright), Run All, move a control, press Run, see a new row and a redrawn figure.

Skipped, saying why, where no Chromium is installed (``.ci/run`` installs Debian's package
when it can). The notebook is a papermill-parameterised copy of the lab's notebook 06 that
serves a test handler (no model to train) with one-second runs."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit import paths
from tests.cells import handler_bundle

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "labkit-browser-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mnist_root() -> str:
    """The explorer sends real digits: the MNIST files the lab uses (skip without them)."""
    from tests.conftest import SHARED_MNIST

    root = os.environ.get("LABKIT_MNIST_ROOT") or (
        str(SHARED_MNIST) if SHARED_MNIST.is_dir() else ""
    )
    if not root:
        pytest.skip("no MNIST files (LABKIT_MNIST_ROOT)")
    return root


@pytest.fixture
def lab(tmp_path: Path):
    """JupyterLab serving a parameterised notebook 06; yields its URL."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    if not Path(CHROMIUM).is_file():
        pytest.skip("no Chromium here (apt-get install -y chromium; .ci/run does it on Debian)")
    pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    bundle = handler_bundle(tmp_path / "bundle", handler="fault_handlers.echo_batch")
    notebook = load_notebook_node(str(paths.notebooks_dir() / "06_explore_batching.ipynb"))
    parameters = {"bundle_dir": str(bundle), "duration_s": 1.0, "network": None,
                  "concurrency": 1}  # fmt: skip
    nbformat.write(parameterize_notebook(notebook, parameters), tmp_path / "06.ipynb")
    port = free_port()
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
               f"--ServerApp.port={port}", f"--IdentityProvider.token={TOKEN}",
               f"--ServerApp.root_dir={tmp_path}", "--ServerApp.ip=127.0.0.1"]  # fmt: skip
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
           "LABKIT_MNIST_ROOT": mnist_root()}  # fmt: skip
    with jupyterlab(command, env, port, TOKEN) as url:
        yield url


@contextlib.contextmanager
def jupyterlab(command: list[str], env: dict[str, str], port: int, token: str) -> Iterator[str]:
    """JupyterLab started by ``command`` (its own process group), once it answers; its URL.
    Stopped, with everything it started (kernels, instances), when the block ends."""
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True, env=env)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"JupyterLab did not start: {' '.join(command)}") from None
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def test_notebook_06_runs_and_its_controls_rerun_and_redraw(lab: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page_errors: list[str] = []
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        try:
            page.goto(f"{lab}/lab/tree/06.ipynb?token={TOKEN}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            # the kernel connected (Run All before that would run nothing)
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=120_000)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_text("Run All Cells", exact=True).click()

            run = page.locator(".jupyter-widgets.widget-button", has_text="Run")
            deadline = time.monotonic() + 300  # both opening runs done, the widget drawn
            while run.count() == 0:
                body = page.inner_text("body")
                assert "Traceback (most recent call last)" not in body, body[-3000:]
                assert time.monotonic() < deadline, "the widget did not appear"
                page.wait_for_timeout(1000)
            widget = page.locator(".jupyter-widgets.widget-vbox").first
            assert widget.locator("img").count() == 0  # nothing drawn under the controls yet

            widget.locator(".widget-dropdown select").first.select_option("static")
            run.click()
            status = widget.locator(".widget-html", has_text="Done: #3")
            status.wait_for(timeout=120_000)
            assert "#3 static N=5" in status.inner_text()
            rows = widget.locator("table tbody tr")
            rows.first.wait_for(timeout=60_000)
            assert rows.count() == 3 and "static N=5" in rows.nth(2).inner_text()
            widget.locator("img").first.wait_for(timeout=60_000)  # the figure, redrawn with #3
            assert widget.locator("img").count() == 1
            text = page.inner_text("body")
            assert "Error displaying widget" not in text and "not found" not in text
            assert not [e for e in page_errors if "widget" in e.lower()], page_errors
        finally:
            browser.close()
