"""The tutorial as a student meets it: ``labkit open`` on a fresh workspace, then notebooks
01 to 05 in JupyterLab in Chromium (Playwright), in order, each opened from the file
browser and run through the menu's Run > Run All Cells; then notebook 06, whose explorer
widget is driven as a student would (a control moved, Run pressed, a new row and a redrawn
figure). Notebook 06 serves a test handler with one-second runs (its own lesson is the
widget, tested here in one JupyterLab session with the rest, not the model).

Parameters for test speed are injected beforehand with papermill's prepare-only mode, as a
course would for a quick check, never by editing the notebooks. Each notebook must finish
with no error output, draw the figures it promises and write the files it says it writes;
the time each took is printed (and recorded as a test property). Skipped, saying why, where
no Chromium is installed (``.ci/run`` installs Debian's package when it can)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.browser import CHROMIUM, explore_with_the_widget, free_port, jupyterlab, mnist_root
from tests.cells import handler_bundle
from tests.conftest import users_environment

pytestmark = pytest.mark.slow

TOKEN = "labkit-tutorial-test"

#: Test-speed parameters per notebook (the quick preset's spirit: every step, little traffic).
QUICK = {
    "01_train_mnist": {"epochs": 1, "max_train_samples": 1000, "max_test_samples": 200},
    "02_build_lambda_image": {"n_digits": 2, "build_docker_image": False},
    "03_deploy_function": {"n_digits": 2, "keep_alive_s": 60.0},
    "04_run_workloads": {"duration_s": 2.0, "repetitions": 1, "uniform_rates": [10.0],
                         "cpu_share": False},
    "05_analyze_latency_cost": {"n_boot": 100, "sweep_points": 2, "sweep_duration_s": 15.0,
                                "cross_validation_seeds": 1, "fit_candidates": 1,
                                "fit_duration_s": 10.0},
}  # fmt: skip

#: What each notebook promises: figures drawn at least, files (globs under the workspace).
PROMISES = {
    "01_train_mnist": (3, ["models/mnist-cnn/model.pt", "models/mnist-cnn/model.json"]),
    "02_build_lambda_image": (1, ["bundles/mnist-cnn/bundle.json"]),
    "03_deploy_function": (1, []),
    "04_run_workloads": (2, ["results/experiments/*/matrix.json"]),
    "05_analyze_latency_cost": (8, ["results/experiments/*/report.md",
                                    "results/experiments/*/claims.csv"]),
}  # fmt: skip


@pytest.fixture
def opened(tmp_path: Path):
    """A student's workspace, parameterised for speed, served by ``labkit open``."""
    from papermill import execute_notebook

    if not Path(CHROMIUM).is_file():
        pytest.skip("no Chromium here (apt-get install -y chromium; .ci/run does it on Debian)")
    pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    workspace = tmp_path / "lab"
    # everything goes where a student's would: the workspace
    env = users_environment(JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
                            LABKIT_MNIST_ROOT=mnist_root())  # fmt: skip
    subprocess.run([sys.executable, "-m", "labkit.cli", "init", str(workspace)], check=True,
                   capture_output=True, env=env)  # fmt: skip
    bundle = handler_bundle(tmp_path / "bundle", handler="fault_handlers.echo_batch")
    widget = {"bundle_dir": str(bundle), "duration_s": 1.0, "network": None, "concurrency": 1}
    for name, parameters in (QUICK | {"06_explore_batching": widget}).items():
        notebook = workspace / "notebooks" / f"{name}.ipynb"
        execute_notebook(str(notebook), str(notebook), parameters=parameters, prepare_only=True,
                         progress_bar=False)  # fmt: skip
    port = free_port()
    command = [sys.executable, "-m", "labkit.cli", "open", str(workspace), "--no-browser",
               "--port", str(port), "--token", TOKEN]  # fmt: skip
    with jupyterlab(command, env, port, TOKEN) as url:
        yield url, workspace


def status(page) -> str:
    """The status bar: the active notebook's kernel state and its file name."""
    return " ".join(page.locator(".jp-StatusBar-Widget").all_inner_texts())


def idle(page, notebook: Path) -> bool:
    text = status(page)
    return "Python 3 (ipykernel) | Idle" in text and notebook.name in text


def open_notebook(page, url: str, notebook: Path) -> None:
    """JupyterLab on a fresh layout with ``notebook`` alone open."""
    page.goto(f"{url}/lab/workspaces/tutorial/tree/notebooks/{notebook.name}?token={TOKEN}&reset")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)


def open_next(page, notebook: Path) -> None:
    """As a student goes on, in the JupyterLab already loaded: File > Close All Tabs, then
    ``notebook`` double-clicked in the file browser (a reload of the page would cost
    Chromium 3-5 CPU s each time)."""
    page.get_by_role("menuitem", name="File", exact=True).click()
    page.get_by_text("Close All Tabs", exact=True).click()
    page.wait_for_selector(".jp-Notebook .jp-Cell", state="detached", timeout=60_000)
    page.locator(".jp-DirListing-item", has_text=notebook.name).dblclick()
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)


def start_run_all(page, notebook: Path) -> None:
    """Run > Run All Cells on ``notebook``, once it is the active tab and its kernel idle."""
    deadline = time.monotonic() + 120
    while not idle(page, notebook):
        assert time.monotonic() < deadline, f"{notebook.name}: no idle kernel: {status(page)}"
        page.wait_for_timeout(500)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()


def run_all(page, notebook: Path, timeout_s: float) -> dict:
    """:func:`start_run_all`, then save until the saved notebook has run to its end (or
    shows an error); returns it."""
    start_run_all(page, notebook)
    deadline = time.monotonic() + timeout_s
    while True:
        page.wait_for_timeout(2000)
        assert time.monotonic() < deadline, f"{notebook.name} did not finish in {timeout_s:.0f} s"
        running = page.locator(".jp-InputArea-prompt", has_text="[*]").count()
        if running or not idle(page, notebook):
            continue
        page.keyboard.press("Control+s")  # save only when it looks finished: outputs are MBs
        page.wait_for_timeout(1000)
        saved = json.loads(notebook.read_text())
        code = [c for c in saved["cells"] if c["cell_type"] == "code"]
        errors = [o for c in code for o in c.get("outputs", []) if o["output_type"] == "error"]
        if errors or all(c.get("execution_count") for c in code):
            return saved


def test_notebooks_01_to_06_run_in_order_in_jupyterlab(opened, record_property) -> None:
    from playwright.sync_api import sync_playwright

    url, workspace = opened
    times = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        try:
            for number, (name, (figures, files)) in enumerate(PROMISES.items()):
                start = time.monotonic()
                notebook = workspace / "notebooks" / f"{name}.ipynb"
                if number == 0:
                    open_notebook(page, url, notebook)
                else:
                    open_next(page, notebook)
                saved = run_all(page, notebook, 600)
                times[name] = round(time.monotonic() - start, 1)
                outputs = [o for c in saved["cells"] for o in c.get("outputs", [])]
                errors = [o for o in outputs if o["output_type"] == "error"]
                assert not errors, f"{name}: {errors[0]['ename']}: {errors[0]['evalue']}"
                drawn = sum("image/png" in o.get("data", {}) for o in outputs)
                assert drawn >= figures, f"{name} drew {drawn} figures, promises {figures}"
                for pattern in files:
                    assert list(workspace.glob(pattern)), f"{name} did not write {pattern}"
            start = time.monotonic()
            explorer = workspace / "notebooks" / "06_explore_batching.ipynb"
            open_next(page, explorer)
            start_run_all(page, explorer)
            explore_with_the_widget(page)
            times[explorer.stem] = round(time.monotonic() - start, 1)
        finally:
            browser.close()
    record_property("seconds_per_notebook", times)
    print(f"\nJupyterLab, Run All, seconds per notebook: {times}")
    # the student's copies hold the outputs; the kit's own notebooks are untouched
    assert not subprocess.run(["git", "status", "--porcelain", "notebooks"], capture_output=True,
                              text=True, cwd=Path(__file__).parent.parent).stdout.strip()  # fmt: skip
