"""What the browser tests share (tests/test_tutorial.py): Chromium, JupyterLab in a process
group of its own, the MNIST files, and notebook 06's widget as a student drives it: Run All,
move a control, press Run, see a new row and a redrawn figure."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


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


def explore_with_the_widget(page) -> None:
    """Notebook 06, open and run (Run All): its two opening runs finish and the explorer's
    controls appear; choosing "static" and pressing Run adds row #3 to the table and redraws
    the figure under the controls; no widget error on the page."""
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
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
