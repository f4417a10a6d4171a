"""The ``labkit`` command: one subcommand per lab step, plus ``lab`` to run them all.

Exit codes: 0 success; 1 a step failed (the message says where to look); 2 bad input
(unknown preset, parameter, missing files); 130 interrupted.

Each command imports what it runs inside its own function (deferred: pandas, torch, boto3 and
matplotlib), so that ``labkit --help`` and a mistyped flag answer at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from labkit.backends import KINDS
from labkit.load.arguments import add_workload_arguments, workload_from
from labkit.settings import ARCHITECTURES, FunctionSettings
from labkit.tune import command as tune_command

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + SIGINT, 128 + SIGTERM
_FUNCTION = FunctionSettings()  # the defaults, for help texts


def _cmd_lab_run(args: argparse.Namespace) -> int:
    from labkit import lab

    overrides = [lab.parse_override(text) for text in args.set or []]
    run = lab.run_lab(args.preset, overrides=overrides, only=args.only, progress=not args.quiet)
    print(f"\nlab run complete: {run.run_dir}")
    for path in run.executed:
        print(f"  executed notebook: {path}  ({run.seconds[path.stem]:.1f} s)")
    experiments = run.run_dir / "experiments"
    if (experiments / "matrix.json").is_file():
        _print_headline(experiments)
    answers = run.run_dir / "where-to-batch" / "answers.txt"
    if answers.is_file():
        print(f"\nWhere should batching happen? (notebook 09; {answers.parent})")
        print(answers.read_text().rstrip())
    models = run.run_dir / "your-model" / "answers.md"
    if models.is_file():
        print(f"\nDoes batching pay for bigger models? (notebook 10; {models.parent})")
        print(models.read_text().rstrip())
    tuned = run.run_dir / "tune" / "answer.json"
    if tuned.is_file():
        print(f"\nThe cheapest configuration that meets the SLO (notebook 11; {tuned.parent})")
        print("\n".join(json.loads(tuned.read_text())["lines"]))
    return EXIT_OK


def _print_headline(experiments: Path) -> None:
    """Where the results are, Table 1 beside the paper's, and the verdicts on the claims
    (as the report found them, when it was written)."""
    import pandas as pd

    from labkit.analysis import claims, report

    print(f"  results: {experiments}")
    if (experiments / "report.md").is_file():
        print(f"  report:  {experiments / 'report.md'}")
    print("\n" + report.side_by_side_text(report.load_run(experiments)))
    if (experiments / report.CLAIMS_FILE).is_file():
        verdicts = pd.read_csv(experiments / report.CLAIMS_FILE)
        print("\n" + claims.verdicts_text(verdicts))
        print(f"\nwhy each verdict: {experiments / 'report.md'} ('The paper's claims')")


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _experiment_base(args: argparse.Namespace) -> Any:
    from labkit import backends
    from labkit.aws import image
    from labkit.experiment import ExperimentConfig
    from labkit.load.batching import PolicyConfig

    # What the user typed is checked first: a bad value is said before a fresh clone spends
    # a minute training and bundling the model below.
    workload = workload_from(args, args.duration_s)  # its values are checked as it is made
    if workload.trace:
        workload.arrivals()  # the trace's file, read and checked (the cell reads it again)
    function = FunctionSettings.given(name=args.function_name, memory_mb=args.memory_mb,
                                      concurrency=args.concurrency, provisioned=args.provisioned)  # fmt: skip
    if args.timeout_s is None:
        args.timeout_s = 0.0 if args.policy == "sqs" else 0.3
    policy = PolicyConfig(args.policy, args.size, args.timeout_s)
    if policy.kind == "sqs":
        policy.mapping()  # AWS's checks of the mapping (ExperimentConfig makes them again)
    bundle = args.bundle
    if bundle is None and "bundle_dir" in backends.backend_class(args.backend).options:
        found = image.existing_bundle()
        if found is None:  # a fresh clone: build what the run needs, as `deploy up` does
            print("no bundle yet: building one from the lab's model (`labkit bundle`)",
                  file=sys.stderr)  # fmt: skip
            found = image.ensure_bundle(train_if_missing=True, progress=_say).path
        bundle = str(found)
    if args.slo_ms is None:
        args.slo_ms = _bundle_slo(bundle) or 200.0
    return ExperimentConfig(
        workload=workload, policy=policy,
        function=function, backend=args.backend, bundle_dir=bundle, region=args.region,
        profile=args.profile, network=args.network, slo_ms=args.slo_ms, data_root=args.data_root,
    )  # fmt: skip


def _bundle_slo(bundle: str | None) -> float | None:
    from labkit.aws.image import MANIFEST, Bundle

    if bundle and (Path(bundle) / MANIFEST).is_file():
        return Bundle.open(bundle).slo_ms
    return None


def _cmd_run(args: argparse.Namespace) -> int:
    import dataclasses

    from labkit import experiment
    from labkit.analysis import report
    from labkit.load.workloads import WorkloadConfig

    base = _experiment_base(args)
    if args.matrix == "paper":
        bursty = dataclasses.replace(base.workload, kind="bursty")
        uniform = dataclasses.replace(base.workload, kind="uniform")
        cells = experiment.paper_matrix(base, [uniform, bursty], static_size=args.size,
                                        dynamic_size=args.size, timeout_s=args.timeout_s,
                                        repetitions=args.repetitions)  # fmt: skip
        run = experiment.run_matrix(cells, args.out, label="paper-matrix")
    else:
        assert isinstance(base.workload, WorkloadConfig)
        run = experiment.run_experiment(base, args.out)
    print(report.headline_text(report.load_run(run)))
    print(f"\nresults: {run}")
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    from labkit.analysis import report

    run = report.resolve_run(args.run)
    report.write_report(run, slo_ms=args.slo_ms)
    _print_headline(run)
    return EXIT_OK


def _cmd_deploy(args: argparse.Namespace) -> int:
    from labkit.aws import deploy, queue_source

    function = FunctionSettings.given(name=args.function_name, memory_mb=args.memory_mb,
                                      timeout_s=args.timeout_s, architecture=args.architecture,
                                      provisioned=args.provisioned)  # fmt: skip
    config = deploy.DeployConfig(function=function, region=args.region, image_uri=args.image_uri,
                                 role_arn=args.role_arn, reserved_concurrency=args.reserved_concurrency)  # fmt: skip
    if args.action == "plan":
        plan = deploy.AwsDeployment(config).plan(expected_invocations=args.expected_invocations,
                                                 max_budget_usd=args.max_budget_usd)  # fmt: skip
        print(plan.table())
    elif args.action == "up":
        from labkit.aws import image
        from labkit.data import make_event, synthetic_mnist

        bundle = (
            None
            if args.image_uri
            else image.ensure_bundle(args.model, args.bundle, train_if_missing=True, progress=print)
        )
        if bundle is not None:  # two inputs its model takes (any model's spec, or digits)
            from labkit.studies.your_model import event as sample_event

            event = sample_event(bundle, 2)
        else:
            event = make_event(synthetic_mnist(2, seed=0).images)
        rollout = deploy.plan_and_deploy(config, bundle=bundle, smoke_event=event,
                                         expected_invocations=args.expected_invocations,
                                         max_budget_usd=args.max_budget_usd, progress=print)  # fmt: skip
        print(f"deployed: {rollout.deployed!r}")
        print(f"smoke test: {rollout.smoke.round_trip_ms:.0f} ms round trip, no error")
    else:
        deleted = queue_source.teardown(deploy.AwsDeployment(config, progress=print))
        print("deleted: " + (", ".join(deleted) if deleted else "nothing (no labkit resources)"))
    return EXIT_OK


def _cmd_init(args: argparse.Namespace) -> int:
    from labkit import paths

    root, copied, kept = paths.init_workspace(args.folder)
    print(f"labkit workspace: {root}")
    print(f"  notebooks copied: {len(copied)}; kept as they were: {len(kept)}")
    print(f"  next: cd {root} && labkit lab run --preset quick")
    return EXIT_OK


#: What each notebook of the tutorial takes with its own defaults on 2 cores (student time,
#: then the run), as its header says; README and the instructors' guide give the same.
TUTORIAL = (
    ("01_train_mnist", "~15 min + a 1-2 min training run"),
    ("02_build_lambda_image", "~10 min + under a minute"),
    ("03_deploy_function", "~15 min + under a minute"),
    ("04_run_workloads", "~25 min + a 5 min run"),
    ("05_analyze_latency_cost", "~30 min + 1-2 min"),
)


def _cmd_open(args: argparse.Namespace) -> int:
    import os
    import subprocess

    from labkit import paths

    root = Path(args.folder).expanduser().resolve()
    if not (root / paths.MARKER).is_file():
        _, copied, _ = paths.init_workspace(root)
        print(f"made the workspace {root} ({len(copied)} notebooks, your own copies)")
    print(f"JupyterLab on {root}: your runs write into these copies, nothing else changes.")
    print("Open the notebooks in order and run each with Run > Run All Cells:")
    for name, takes in TUTORIAL:
        print(f"  notebooks/{name}.ipynb  ({takes})")
    print("then 06-11 and the assignment (README's lab map). Ctrl-C here stops JupyterLab.")
    command = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={root}",
               f"notebooks/{TUTORIAL[0][0]}.ipynb"]  # fmt: skip
    if args.no_browser:
        command.append("--no-browser")
    if args.port is not None:
        command.append(f"--ServerApp.port={args.port}")
    if args.token is not None:
        command.append(f"--IdentityProvider.token={args.token}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # a container's root user (JupyterLab refuses it otherwise)
    try:
        return subprocess.call(command, cwd=root)
    except KeyboardInterrupt:
        return EXIT_OK


def _cmd_lab_sweep(args: argparse.Namespace) -> int:
    from labkit import lab
    from labkit.analysis import numbers  # deferred: pandas

    grid = [lab.parse_grid(text) for text in args.grid]
    overrides = [lab.parse_override(text) for text in args.set or []]
    from labkit.tune.executor import Cluster

    sweep = lab.run_sweep(args.preset, grid, overrides=overrides, only=args.only,
                          progress=not args.quiet, cluster=Cluster(args.workers, args.scheduler))  # fmt: skip
    columns = [c for c in sweep.table.columns if c not in ("complete",)][:14]
    if len(sweep.table):
        print(numbers.text(sweep.table[columns]))
    print(f"\nsweep complete: {sweep.sweep_dir} ({len(sweep.runs)} runs; table: sweep.csv)")
    return EXIT_OK


def _cmd_assignment_build(args: argparse.Namespace) -> int:
    from labkit.course import autograder

    built = autograder.build(args.out, master=args.master, secret_file=args.secret_file)
    print(f"student notebook (hand it out): {built.student}")
    print(f"autograder zip (Gradescope, or labkit assignment grade): {built.autograder_zip}")
    print(f"grading secret (keep it, never hand it out): {built.secret}")
    return EXIT_OK


def _cmd_assignment_grade(args: argparse.Namespace) -> int:
    from labkit.analysis import numbers  # deferred: pandas
    from labkit.course import autograder

    table = autograder.grade(args.submissions, args.autograder, args.out)
    print(numbers.text(table))
    print(f"\ngrades: {Path(args.out) / 'grades.csv'}")
    return EXIT_OK


def _cmd_lab_presets(args: argparse.Namespace) -> int:
    from labkit import lab

    for name, description in lab.available_presets().items():
        print(f"{name:10s} {description}")
    return EXIT_OK


def _cmd_train(args: argparse.Namespace) -> int:
    from labkit import paths
    from labkit.models.mnist import TrainConfig, train_and_export

    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        max_train_samples=args.max_train_samples,
    )
    outcome = train_and_export(
        config, paths.resolve_model_dir(args.out), data_root=args.data_root, reuse=args.reuse
    )
    verb = "reused" if outcome.reused else "trained and exported"
    print(f"{verb} {outcome.model_dir}: test accuracy {outcome.evaluation.accuracy_pct:.2f} %")
    return EXIT_OK


def _cmd_bundle(args: argparse.Namespace) -> int:
    from labkit import paths
    from labkit.aws.image import build_bundle, build_image

    if args.input or _names_any_model(args.model):
        return _bundle_any_model(args)
    model_dir = paths.resolve_model_dir(args.model)
    out = args.out or paths.default_bundle_dir(model_dir, variant=args.variant)
    bundle = build_bundle(model_dir, out, variant=args.variant)
    print(f"bundle of model {bundle.model_name} {bundle.model_version}: {bundle.path}")
    if args.image:
        print(build_image(bundle, args.tag).message)
    return EXIT_OK


def _names_any_model(model: str | None) -> bool:
    """Whether ``model`` is a model file or a registry model other than the trained MNIST CNN
    (which keeps its own handler and bundle)."""
    from labkit.models import registry

    if not model:
        return False
    entry = registry.MODELS.get(model)
    return Path(model).is_file() or (entry is not None and entry.build is not None)


def _bundle_any_model(args: argparse.Namespace) -> int:
    from labkit.aws.image import build_image
    from labkit.aws.model_bundle import build_model_bundle

    bundle = build_model_bundle(args.model, args.out, input_spec=args.input, codec=args.codec,
                                slo_ms=args.slo_ms)  # fmt: skip
    slo = f" --slo-ms {bundle.slo_ms:g}" if bundle.slo_ms else ""
    print(f"bundle of {bundle.model_name} ({bundle.input}, sent as {bundle.codec}): {bundle.path}\n"
          f"at most {bundle.largest_batch} inputs per invocation (Lambda's 6 MB payload)\n"
          f"measure it: labkit run --bundle {bundle.path}{slo}")  # fmt: skip
    if args.image:
        print(build_image(bundle, args.tag).message)
    return EXIT_OK


def _cmd_models(args: argparse.Namespace) -> int:
    import pandas as pd

    from labkit.analysis import numbers  # deferred: pandas
    from labkit.models import registry

    rows = pd.DataFrame(registry.table())
    shown = rows.drop(columns=["description", "slo_source"]) if not args.long else rows
    print(numbers.text(shown))
    print("\nbundle one: labkit bundle --model NAME; your own: labkit bundle --model FILE.pt|.onnx "
          "--input SPEC (e.g. float32[3,224,224])")  # fmt: skip
    return EXIT_OK


def _cmd_emulator(args: argparse.Namespace) -> int:
    from labkit.emulator.server import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labkit",
        description="What batching does to ML inference on serverless platforms: train, package, "
        "deploy, load and analyse, on the embedded local Lambda or on AWS Lambda.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    lab = sub.add_parser("lab", help="run the lab's notebooks headless with papermill")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True, metavar="ACTION")
    run = lab_sub.add_parser(
        "run",
        help="execute the notebooks in order into a new results folder",
        description="Execute the lab notebooks in order with papermill. Each run "
        "writes results/lab/<time>-<preset>/ and never overwrites an earlier run.",
    )
    run.add_argument(
        "--preset", default="paper", help="preset name (see `labkit lab presets`) or YAML path"
    )
    run.add_argument(
        "--set",
        action="append",
        metavar="NB.KEY=VALUE",
        help="override one notebook parameter, e.g. 01_train_mnist.epochs=1 (repeatable)",
    )
    run.add_argument(
        "--only",
        nargs="+",
        action="extend",
        metavar="NB",
        help="run only these notebooks (stems or numbers; repeatable)",
    )
    run.add_argument("--quiet", action="store_true", help="no per-cell progress bar")
    run.set_defaults(func=_cmd_lab_run)
    sweep = lab_sub.add_parser(
        "sweep",
        help="run notebooks once per combination of parameter values; collect one table",
        description="A papermill sweep: for every combination of the --grid values, run the "
        "chosen notebooks (default 04 and 05, on the already trained model) into "
        "results/sweeps/<time>-<preset>/<combination>/, then write sweep.csv with one row "
        "per (combination, cell). Example: --grid 04_run_workloads.dynamic_timeout_s="
        "[0.1,0.3] --grid 04_run_workloads.uniform_rate=[10,40]",
    )
    sweep.add_argument("--preset", default="quick", help="preset name or YAML path")
    sweep.add_argument("--grid", action="append", required=True, metavar="NB.KEY=[V1,V2]",
                       help="values of one parameter (YAML list; repeatable)")  # fmt: skip
    sweep.add_argument("--set", action="append", metavar="NB.KEY=VALUE", help="fixed override")
    sweep.add_argument("--only", nargs="+", action="extend", metavar="NB",
                       help="notebooks to run (default: 04 05; repeatable)")  # fmt: skip
    sweep.add_argument("--quiet", action="store_true", help="no per-cell progress bar")
    sweep.add_argument("--workers", type=int, default=1,
                       help="combinations at once on this machine (default 1: live cells that "
                            "share the cores measure each other)")  # fmt: skip
    sweep.add_argument("--scheduler", default=None,
                       help="a running Dask scheduler (tcp://host:8786): a combination per worker")  # fmt: skip
    sweep.set_defaults(func=_cmd_lab_sweep)
    presets = lab_sub.add_parser("presets", help="list the shipped presets")
    presets.set_defaults(func=_cmd_lab_presets)

    train = sub.add_parser(
        "train",
        help="train the MNIST classifier and export the artefact",
        description="Train the CNN on MNIST, evaluate on the test set and export "
        "model.pt + model.json (the artefact the function loads).",
    )
    train.add_argument("--epochs", type=int, default=2)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--lr", type=float, default=0.01)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--max-train-samples", type=int, default=None)
    train.add_argument(
        "--data-root",
        default=None,
        help="folder holding MNIST/raw (else $LABKIT_MNIST_ROOT, data/)",
    )
    train.add_argument(
        "--out", default=None, help="model folder, or a name under models/ (default: mnist-cnn)"
    )
    train.add_argument(
        "--reuse", action="store_true", help="keep an existing model trained with the same settings"
    )
    train.set_defaults(func=_cmd_train)

    bundle = sub.add_parser(
        "bundle",
        help="lay out the function bundle (the image's task root); build the image if Docker runs",
        description="Copy the function code, the model and the Dockerfile into a bundle folder: "
        "the Docker build context, and what the embedded local Lambda runs directly.",
    )
    bundle.add_argument("--model", default=None,
                        help="the trained MNIST model's folder or name (default: mnist-cnn), a "
                        "registry model (`labkit models`), or your TorchScript/ONNX file")  # fmt: skip
    bundle.add_argument("--input", default=None,
                        help="your model's input, one instance: DTYPE[D1,...], e.g. float32[3,224,224]")  # fmt: skip
    bundle.add_argument("--codec", choices=["tensor", "jpeg"], default=None,
                        help="how requests carry an input: raw tensor (default) or JPEG (images)")  # fmt: skip
    bundle.add_argument("--slo-ms", type=float, default=None, help="the SLO to measure it at")
    bundle.add_argument("--out", default=None, help="bundle folder (default: bundles/<model>)")
    bundle.add_argument("--variant", choices=["torch", "onnx"], default="torch",
                        help="onnx: the lighter ONNX Runtime variant (bundles/<model>-onnx)")  # fmt: skip
    bundle.add_argument("--image", action="store_true", help="also `docker build` the image")
    bundle.add_argument("--tag", default="labkit-mnist:latest", help="image tag for --image")
    bundle.set_defaults(func=_cmd_bundle)

    models = sub.add_parser(
        "models",
        help="list the models the kit can bundle and measure",
        description="The registry: each model's input, codec, SLO, parameters, weights and "
        "forward GFLOPs per instance (counted by PyTorch on one random input).",
    )
    models.add_argument("--long", action="store_true", help="also descriptions and SLO sources")
    models.set_defaults(func=_cmd_models)

    tune_command.add_parser(sub)  # its parser only: the search loads when the command runs

    init = sub.add_parser(
        "init",
        help="make a folder a labkit workspace and copy the lab notebooks into it",
        description="Write the .labkit marker and copy the shipped notebooks into "
        "FOLDER/notebooks (never overwriting one that is there). Models, bundles and results "
        "then go under FOLDER whenever labkit runs in it (or LABKIT_HOME points at it).",
    )
    init.add_argument("folder", nargs="?", default=".", help="the workspace (default: here)")
    init.set_defaults(func=_cmd_init)

    opener = sub.add_parser(
        "open",
        help="open the lab in JupyterLab, on your own copy of the notebooks",
        description="Make FOLDER a workspace (`labkit init`) if it is not one, then start "
        "JupyterLab there with notebook 01 open. Your runs write their outputs into FOLDER's "
        "copies, so a checkout of the kit stays clean. Ctrl-C stops JupyterLab.",
    )
    opener.add_argument("folder", nargs="?", default="lab-workspace",
                        help="the workspace (default: lab-workspace)")  # fmt: skip
    opener.add_argument("--no-browser", action="store_true", help="print the URL, open nothing")
    opener.add_argument("--port", type=int, default=None, help="default: JupyterLab's (8888)")
    opener.add_argument("--token", default=None, help="default: a random one, in the URL printed")
    opener.set_defaults(func=_cmd_open)

    _add_assignment_parser(sub)
    _add_run_parser(sub)
    _add_report_parser(sub)
    _add_deploy_parser(sub)

    from labkit.emulator.config import add_arguments

    emulator = sub.add_parser(
        "emulator",
        help="serve the embedded local Lambda (Invoke API for boto3 / the AWS CLI) until Ctrl-C",
        description="The embedded local Lambda: each function NAME=DIR is served on the Lambda "
        "Invoke API (use --endpoint-url http://HOST:PORT with boto3 or the AWS CLI); each instance "
        "is a process running the official runtime client in DIR, or DIR/bootstrap when it is an "
        "executable (a custom runtime). Prints one JSON line with the endpoint when ready.",
    )
    add_arguments(emulator)
    emulator.set_defaults(func=_cmd_emulator)
    return parser


def _add_assignment_parser(sub: Any) -> None:
    assignment = sub.add_parser(
        "assignment", help="the course assignment: build its versions with otter-grader, grade"
    )
    assignment_sub = assignment.add_subparsers(dest="assignment_command", required=True)
    build = assignment_sub.add_parser(
        "build", help="write the student notebook and the autograder zip (otter assign)",
        description="Writes OUT/student/ (hand it out), OUT/autograder/ (the zip: upload it to "
        "Gradescope, or grade with `labkit assignment grade`) and, on the first build, "
        "OUT/grading_secret.txt: it picks every student's hidden workloads; keep it.",
    )  # fmt: skip
    build.add_argument("--out", type=Path, default=Path("assignment-build"))
    build.add_argument("--master", type=Path, default=None,
                       help="the master notebook (default: the lab's assignment)")  # fmt: skip
    build.add_argument("--secret-file", type=Path, default=None,
                       help="the course's secret (default: OUT/grading_secret.txt)")  # fmt: skip
    build.set_defaults(func=_cmd_assignment_build)
    grade = assignment_sub.add_parser(
        "grade",
        help="grade submissions headless (otter run) into one CSV",
    )
    grade.add_argument("submissions", type=Path, nargs="+",
                       help="notebooks or otter export zips")  # fmt: skip
    grade.add_argument("--autograder", type=Path, required=True, help="the autograder zip")
    grade.add_argument("--out", type=Path, default=Path("grades"))
    grade.set_defaults(func=_cmd_assignment_grade)


def _add_run_parser(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="run one experiment cell, or the paper's matrix, and save the records",
        description="Send a workload through a batching policy into the function (embedded "
        "local Lambda by default, or a deployed AWS function) with the open-loop load generator; "
        "writes results/experiments/<time>-<label>/ (config, environment, per-request and "
        "per-invocation records) and prints the headline figures.",
    )
    run.add_argument("--matrix", choices=["paper"], default=None,
                     help="run the paper's 2x2 (static/dynamic x uniform/bursty) + no batching")  # fmt: skip
    run.add_argument("--repetitions", type=int, default=1,
                     help="--matrix: run each static/dynamic cell this many times (seeds + r)")  # fmt: skip
    add_workload_arguments(run)
    run.add_argument("--duration-s", type=float, default=30.0)
    run.add_argument("--policy", default="dynamic",
                     help="none | static | dynamic | adaptive | slo-aware | sqs (the platform "
                          "batches: an SQS queue and event-source mapping)")  # fmt: skip
    run.add_argument("--size", type=int, default=5, help="(maximum) batch size; sqs: BatchSize")
    run.add_argument("--timeout-s", type=float, default=None,
                     help="dynamic: T; adaptive: max wait (default 0.3); sqs: the batching "
                          "window, whole seconds (default 0: what one poll returns)")  # fmt: skip
    run.add_argument("--backend", choices=list(KINDS), default="local",
                     help="local (embedded local Lambda), aws (deployed function) or simulated")  # fmt: skip
    run.add_argument("--bundle", default=None, help="local: the bundle (default bundles/mnist-cnn)")
    run.add_argument("--profile", default=None,
                     help="simulated: platform profile, shipped (local, paper-aws) or a file")  # fmt: skip
    run.add_argument("--network", default=None,
                     help="local, simulated: add a network round trip per invocation "
                          "(same-region, laptop-to-region; default none)")  # fmt: skip
    run.add_argument("--function-name", default=None,
                     help=f"the function (default {_FUNCTION.name}, as `labkit deploy` names it)")  # fmt: skip
    run.add_argument("--region", default=None, help="aws: region (else the AWS chain)")
    run.add_argument("--memory-mb", type=int, default=None,
                     help=f"default {_FUNCTION.memory_mb}")  # fmt: skip
    run.add_argument("--concurrency", type=int, default=None,
                     help="instances / invocations in flight (default: the backend's)")  # fmt: skip
    run.add_argument("--provisioned", type=int, default=None, help="pre-warmed instances")
    run.add_argument("--slo-ms", type=float, default=None,
                     help="default: the bundle's model's SLO, else 200")  # fmt: skip
    run.add_argument("--data-root", default=None)
    run.add_argument("--out", default=None, help="results folder (default: a new one)")
    run.set_defaults(func=_cmd_run)


def _add_report_parser(sub: Any) -> None:
    rep = sub.add_parser(
        "report",
        help="analyse a run: Table 1 beside the paper, plots and report.md",
        description="Recompute every figure of a run folder from its records, print Table 1 "
        "(and the paper's beside it), and write report.md with PNG/SVG figures.",
    )
    rep.add_argument("run", nargs="?", default=None, help="run folder (default: the latest)")
    rep.add_argument("--slo-ms", type=float, default=None, help="default: the run's SLO")
    rep.set_defaults(func=_cmd_report)


def _add_deploy_parser(sub: Any) -> None:
    dep = sub.add_parser(
        "deploy",
        help="AWS: plan, deploy (up) or tear down (down) the function",
        description="Deploy the function to AWS Lambda as a container image. `plan` only reads "
        "and prints what would change and the estimated cost; `up` builds the image from the "
        "bundle (docker, output streamed), pushes it to ECR, ensures an execution role with the "
        "basic logging policy only (or uses --role-arn), creates or updates the function (also "
        "when the image's digest changed), waits until it is Active and smoke-tests it "
        "(idempotent); `down` deletes every resource of the region tagged labkit=managed. "
        "Credentials come from the AWS chain; the region from --region, else the AWS region "
        "chain (AWS_DEFAULT_REGION, the profile). docs/aws.md lists the permissions needed.",
    )
    dep.add_argument("action", choices=["plan", "up", "down"])
    dep.add_argument("--function-name", default=None,
                     help=f"default {_FUNCTION.name} (what `labkit run` invokes)")  # fmt: skip
    dep.add_argument("--region", default=None, help="default: the AWS region chain")
    dep.add_argument("--image-uri", default=None,
                     help="up: an image already in ECR (no docker build, no push)")  # fmt: skip
    dep.add_argument("--model", default=None, help="up: the model to bundle (default mnist-cnn)")
    dep.add_argument("--bundle", default=None, help="up: an existing bundle to build from")
    dep.add_argument("--role-arn", default=None,
                     help="an existing execution role (e.g. AWS Academy's LabRole); none is created")  # fmt: skip
    dep.add_argument("--reserved-concurrency", type=int, default=None,
                     help="reserve this many executions for the function")  # fmt: skip
    dep.add_argument("--provisioned", type=int, default=None,
                     help="keep this many instances ready (billed per hour while set)")  # fmt: skip
    dep.add_argument("--memory-mb", type=int, default=None, help=f"default {_FUNCTION.memory_mb}")
    dep.add_argument("--timeout-s", type=int, default=None, help=f"default {_FUNCTION.timeout_s:g}")
    dep.add_argument("--architecture", choices=list(ARCHITECTURES), default=None,
                     help=f"default {_FUNCTION.architecture}")  # fmt: skip
    dep.add_argument("--expected-invocations", type=int, default=2000, help="for the cost estimate")
    dep.add_argument(
        "--max-budget-usd", type=float, default=None, help="refuse above this estimate"
    )
    dep.set_defaults(func=_cmd_deploy)


# Errors that mean bad input or a failed step, by module. Looked up only among modules already
# imported (one not imported cannot have raised), so `labkit --help` does not pay for torch.
_ERRORS = {
    "labkit.data": ["MnistNotFoundError"],
    "labkit.models.mnist": ["ModelArtifactError"],
    "labkit.function.model_io": ["ModelLoadError"],
    "labkit.lab": ["LabError"],
}
_FAILED_STEPS = {"labkit.lab": ["NotebookFailedError"], "labkit.aws.account": ["DeployError"],
                 "labkit.experiment": ["CellFailedError"],
                 "labkit.course.autograder": ["AutograderError"]}  # fmt: skip


def _loaded_error_types(errors: dict[str, list[str]]) -> tuple[type[BaseException], ...]:
    return tuple(
        getattr(sys.modules[module], name)
        for module, names in errors.items()
        if module in sys.modules
        for name in names
    )


#: The optional module jsonschema imports for two string formats no notebook schema uses.
SLOW_OPTIONAL_MODULE = "rfc3987_syntax"


def skip_unused_format_checks() -> None:
    """Skip an import that costs each of labkit's processes a second.

    jsonschema, which nbformat imports (and so papermill, otter and JupyterLab), builds some
    40 Earley parsers at import when the optional ``rfc3987-syntax`` is installed
    (jupyter-events pulls it in), to check the ``iri`` and ``iri-reference`` formats, which
    no notebook schema uses (python-jsonschema/jsonschema#1428). Marked absent before
    jsonschema's first import, it is skipped: ``import nbformat, papermill`` 2.06 s -> 0.89 s
    here (bench/README.md). Only in labkit's own processes (this command, the grader
    :mod:`labkit.course.autograder` starts, the test suite): importing labkit as a library
    changes nothing in the importer's process."""
    if "jsonschema" not in sys.modules:  # else too late, and harmless
        sys.modules.setdefault(SLOW_OPTIONAL_MODULE, None)  # type: ignore[arg-type]  # None: absent


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``labkit`` command; returns the exit code."""
    from labkit.signals import Terminated, terminate_as_interrupt

    skip_unused_format_checks()  # this process is labkit's: a second off each notebook run
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        with terminate_as_interrupt():  # `kill` saves what was measured, as Ctrl-C does
            return func(args)
    except Terminated as stop:
        print("\nterminated (SIGTERM)" + (f": {stop}" if str(stop) else ""), file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt as stop:
        print("\ninterrupted" + (f": {stop}" if str(stop) else ""), file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        code = _exit_code(exc)
        if code is None:
            raise
        print(f"labkit: error: {exc}", file=sys.stderr)
        return code


def _exit_code(error: Exception) -> int | None:
    """The exit code for an error the user can act on (its message says how), else None."""
    if isinstance(error, _loaded_error_types(_FAILED_STEPS)):
        return EXIT_FAILED
    if isinstance(error, (FileNotFoundError, ValueError, *_loaded_error_types(_ERRORS))):
        return EXIT_BAD_INPUT
    return None


if __name__ == "__main__":
    sys.exit(main())
