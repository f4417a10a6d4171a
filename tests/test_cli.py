"""The ``labkit`` command: fast start, exit codes, and one function name from deploy to run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, main
from tests.conftest import needs_mnist


def test_help_starts_without_torch_or_pandas() -> None:
    code = ("import sys; from labkit.cli import build_parser; build_parser(); "
            "print(json.dumps(sorted(m for m in ('torch', 'pandas') if m in sys.modules)))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert json.loads(out.stdout) == []


def test_bad_input_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "run", "--preset", "nope"]) == EXIT_BAD_INPUT
    assert "unknown preset" in capsys.readouterr().err
    assert main(["train", "--epochs", "0"]) == EXIT_BAD_INPUT
    assert "epochs must be >= 1" in capsys.readouterr().err
    assert main(["run", "--backend", "simulated", "--memory-mb", "64"]) == EXIT_BAD_INPUT
    assert "128-10240" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 2


def test_run_on_the_simulated_backend_prints_the_figures(
    isolated_dirs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--backend", "simulated", "--profile", "paper-aws", "--duration-s", "5",
                 "--policy", "static"]) == EXIT_OK  # fmt: skip
    out = capsys.readouterr().out
    assert "slo_attainment_pct" in out and "static-uniform" in out
    results = Path(out.strip().splitlines()[-1].removeprefix("results: "))
    assert results.is_dir() and results.is_relative_to(isolated_dirs)


def test_a_run_whose_steady_state_is_empty_says_why_instead_of_nan(
    isolated_dirs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 2 s on the paper's profile: every request waits for a 4-8 s cold start
    assert main(["run", "--backend", "simulated", "--profile", "paper-aws", "--duration-s", "2",
                 "--rate", "10"]) == EXIT_OK  # fmt: skip
    out = capsys.readouterr().out
    assert "nan" not in out.lower()
    assert "-dynamic-uniform (all)" in out
    assert "all 20 requests waited for a cold start" in out and "--duration-s 60" in out


@pytest.mark.slow
@needs_mnist  # real digits: skipped, saying why, where MNIST is absent
def test_a_newcomers_first_run_trains_and_bundles_what_it_needs(
    isolated_dirs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fresh clone: no model, no bundle. ``labkit run`` trains the lab's model (here on a
    few digits, to stay quick) and bundles it, saying so, then runs."""
    import functools

    from labkit.models import mnist

    monkeypatch.setenv("LABKIT_BUNDLES_DIR", str(isolated_dirs / "bundles"))
    monkeypatch.setattr(mnist, "TrainConfig",
                        functools.partial(mnist.TrainConfig, max_train_samples=256, epochs=1))  # fmt: skip
    assert main(["run", "--duration-s", "2", "--rate", "5", "--policy", "static"]) == EXIT_OK
    captured = capsys.readouterr()
    assert "no bundle yet: building one" in captured.err
    assert "no trained model at" in captured.err and "training the lab's MNIST CNN" in captured.err
    assert (isolated_dirs / "models" / "mnist-cnn" / "model.pt").is_file()
    assert (isolated_dirs / "bundles" / "mnist-cnn" / "bundle.json").is_file()
    assert "nan" not in captured.out.lower()


@pytest.mark.parametrize("bad", [["--rate", "-3"], ["--policy", "sqs", "--size", "20000"]])
def test_a_newcomers_bad_input_is_refused_before_anything_is_trained(
    isolated_dirs: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    bad: list[str],
) -> None:
    monkeypatch.setenv("LABKIT_BUNDLES_DIR", str(isolated_dirs / "bundles"))
    assert main(["run", "--duration-s", "2", *bad]) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert "labkit: error:" in captured.err and "no bundle yet" not in captured.err
    assert not (isolated_dirs / "models").exists() and not (isolated_dirs / "bundles").exists()


def test_init_makes_a_workspace_and_keeps_what_is_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "ws" / "notebooks" / "04_run_workloads.ipynb"
    mine.parent.mkdir(parents=True)
    mine.write_text("my edits")
    assert main(["init", str(tmp_path / "ws")]) == EXIT_OK
    assert (tmp_path / "ws" / ".labkit").is_file()
    assert mine.read_text() == "my edits"  # never overwritten
    assert (tmp_path / "ws" / "notebooks" / "01_train_mnist.ipynb").is_file()
    assert "kept as they were: 1" in capsys.readouterr().out
    (tmp_path / "a-file").write_text("not a folder")
    for command in ("init", "open"):
        assert main([command, str(tmp_path / "a-file")]) == EXIT_BAD_INPUT
        assert "is a file: a workspace is a folder" in capsys.readouterr().err


@needs_mnist  # real digits: skipped, saying why, where MNIST is absent
def test_deploy_then_run_target_the_same_function(
    isolated_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`labkit deploy up` then `labkit run --backend aws`, no names given: the run invokes the
    function the deploy created (moto's Lambda answers any name, so the name the invoker is
    asked for is read off the kit's own client; it echoes the event back, without predictions,
    so the run fails loudly: tests/backends/test_aws_backend.py has the same path against a fake that
    answers like the function)."""
    import boto3

    from labkit.aws.invoke import LambdaInvoker
    from tests.moto_account import mocked_account

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "eu-west-1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    invoked: list[str] = []
    real_invoke = LambdaInvoker.invoke

    def spy(self: LambdaInvoker, function_name: str, event: object, **options: object) -> object:
        invoked.append(function_name)
        return real_invoke(self, function_name, event, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(LambdaInvoker, "invoke", spy)
    monkeypatch.setattr("labkit.aws.deploy.AwsDeployment._wait", lambda self, waiter: None)
    with mocked_account(monkeypatch):
        repo = boto3.client("ecr").create_repository(repositoryName="elsewhere")["repository"]
        assert main(["deploy", "up", "--image-uri", f"{repo['repositoryUri']}:v1"]) == EXIT_OK
        created = {f["FunctionName"] for f in boto3.client("lambda").list_functions()["Functions"]}
        assert main(["run", "--backend", "aws", "--duration-s", "0.5", "--rate", "4",
                     "--policy", "none"]) == EXIT_FAILED  # fmt: skip
    assert created == set(invoked) == {"labkit-mnist"}


def test_only_is_repeatable_and_keeps_every_notebook_named() -> None:
    from labkit.cli import build_parser

    args = build_parser().parse_args(["lab", "run", "--only", "07", "--only", "09", "05"])
    assert args.only == ["07", "09", "05"]  # not just the last flag's
    sweep = ["lab", "sweep", "--grid", "04.duration_s=[2,3]"]
    assert build_parser().parse_args(sweep).only is None  # its default, 04 and 05, applies
    assert build_parser().parse_args([*sweep, "--only", "04", "--only", "06"]).only == ["04", "06"]


def test_labkits_processes_skip_the_iri_parsers_and_notebooks_still_validate() -> None:
    """labkit.cli.skip_unused_format_checks: jsonschema then leaves out the two ``iri``
    formats (a second of each process's start) and nbformat validates a notebook as before."""
    code = ("import sys; from labkit.cli import skip_unused_format_checks as skip; skip(); "
            "import nbformat; nbformat.validate(nbformat.v4.new_notebook()); "
            "print('rfc3987_syntax' in sys.modules and sys.modules['rfc3987_syntax'] is None)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr
