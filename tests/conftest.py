"""Shared fixtures. Tests never touch the network or the user's results/ and models/ folders."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[1]
SHARED_MNIST = PROJECT_DIR.parent / "shared" / "data" / "mnist"

#: One thread per process for PyTorch, OpenMP and the BLAS libraries, unless the caller says
#: otherwise. The suite runs a worker more than there are cores, and each worker, kernel and
#: instance it starts would otherwise use a thread per core: on 2 cores, training the test
#: model took 1.47 CPU s in one thread and 2.52 in two (its OpenMP threads spin while they wait
#: for a core), and the whole suite 524 core-s instead of 549-591. Set before numpy and
#: PyTorch load (they read it once); the processes the tests start inherit it.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

#: Nothing the suite runs writes into the checkout's results/, models/ or bundles/: unless the
#: caller names them, they point into a scratch folder of this process (a test that needs the
#: defaults removes these, as tests/test_paths.py does). The fixtures' own folders
#: (``isolated_dirs``) still come first; this is for what a test forgets: a search's kept
#: probes once landed in the checkout's results/tune/probes/ from a test without them.
_SCRATCH = Path(tempfile.mkdtemp(prefix="labkit-tests-"))
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)
for _name, _folder in (("LABKIT_RESULTS_DIR", "results"), ("LABKIT_MODELS_DIR", "models"),
                       ("LABKIT_BUNDLES_DIR", "bundles")):  # fmt: skip
    os.environ.setdefault(_name, str(_SCRATCH / _folder))

#: Where labkit puts its folders when told (a user's shell has none of these).
FOLDER_VARIABLES = ("LABKIT_RESULTS_DIR", "LABKIT_MODELS_DIR", "LABKIT_BUNDLES_DIR", "LABKIT_HOME")


def users_environment(**extra: str) -> dict[str, str]:
    """This process's environment as a user's shell would have it: without the suite's own
    folders (above), so a command finds everything where a user's would (the workspace, the
    current folder); plus ``extra``."""
    shell = {k: v for k, v in os.environ.items() if k not in FOLDER_VARIABLES}
    return shell | extra


# The machine's offline MNIST mirror, when the caller did not name one.
if not os.environ.get("LABKIT_MNIST_ROOT") and (SHARED_MNIST / "MNIST" / "raw").is_dir():
    os.environ["LABKIT_MNIST_ROOT"] = str(SHARED_MNIST)


def real_mnist_available() -> bool:
    from labkit.data import MNIST_FILES, resolve_root

    raw = resolve_root() / "MNIST" / "raw"
    return all((raw / name).is_file() or (raw / name[:-3]).is_file() for name in MNIST_FILES)


def wait_for(
    condition: Callable[[], bool], timeout_s: float = 20.0, what: str = "condition"
) -> None:
    """Poll ``condition`` until true; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


#: The longest test files, in the order the workers take them up, so that no worker is left
#: with one at the end: pyproject's ``--no-loadscope-reorder`` keeps this order (by default
#: xdist hands out the files with the most tests first, and the longest, which have few, ran
#: alone at the end: 375-382 s against 353 s in this order). Longest first, by their time in
#: the suite (`pytest --durations=0`, summed per file).
LONGEST_FIRST = ("test_autograder.py", "test_notebooks.py", "test_tutorial.py", "test_interruptions.py",
                 "test_platforms.py", "test_aws_answers.py", "test_deploy.py",
                 "test_assignment.py", "test_queue_cells.py", "test_install.py",
                 "test_event_sources.py", "test_aws_backend.py",
                 "test_explore.py", "test_model.py", "test_aa_battery.py", "test_emulator.py",
                 "test_your_model.py", "test_validate.py", "test_search.py")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    """The suite is one of labkit's own processes (a second off each worker: see
    :func:`labkit.cli.skip_unused_format_checks`).

    Ctrl-C reaches the commands the tests start as it would from a terminal. A shell
    without job control starts a background job (``pytest ... &``) with SIGINT ignored
    (POSIX), every child inherits that, and a Python child then never raises
    KeyboardInterrupt: the tests that press Ctrl-C would fail for how pytest was started."""
    from labkit.cli import skip_unused_format_checks

    skip_unused_format_checks()
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker more than cores. Much of the suite waits on processes it
    started (instances, kernels, the quick lab); a third worker on two cores fills those waits
    (bench/README.md, the test suite, has the figures)."""
    return (os.cpu_count() or 1) + 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file and among the rest is kept


needs_mnist = pytest.mark.skipif(not real_mnist_available(), reason="real MNIST files not present")


@pytest.fixture(autouse=True)
def prompt_aws_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kit looks at a function's state every 2 s (an update: every 1 s), as suits AWS; the
    AWS doubles here (moto, tests/aws/aws_answers.py, tests/fake_lambda.py) change state per
    look, not per second, so tests look at once instead of sleeping through those waits."""
    monkeypatch.setattr("labkit.aws.deploy.STATE_POLL_S", 0.01)
    monkeypatch.setattr("labkit.aws.deploy.UPDATE_POLL_S", 0.01)


@pytest.fixture
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Results and models go to a temporary folder (also for notebook kernels, via the env)."""
    monkeypatch.setenv("LABKIT_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("LABKIT_MODELS_DIR", str(tmp_path / "models"))
    return tmp_path


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A model trained briefly on real MNIST (generated digits when MNIST is absent).

    Trained once per run, not once per xdist worker: the first worker to need it trains it
    into the run's shared temporary folder under a file lock, the others read it (training
    is seeded, so every worker would have made the same model; three trainings cost ~30 s
    of CPU on a saturated machine)."""
    from filelock import FileLock

    from labkit.data import load_mnist, synthetic_mnist
    from labkit.models.mnist import TrainConfig, export, train

    if worker_id == "master":  # one process: its own folder
        root = tmp_path_factory.mktemp("model")
    else:  # this run's base folder, which every worker's own folder sits in
        root = tmp_path_factory.getbasetemp().parent / "trained-model"
        root.mkdir(exist_ok=True)
    with FileLock(str(root) + ".lock"):
        if not (root / "model.json").is_file():
            data = (
                load_mnist(train=True).head(4000)
                if real_mnist_available()
                else synthetic_mnist(2000)
            )
            export(train(data, TrainConfig(epochs=1, batch_size=64, seed=1), progress=False), root)
    return root
