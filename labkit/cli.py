"""The ``labkit`` command: one subcommand per lab step, plus ``lab`` to run them all.

Exit codes: 0 success; 1 a step failed (the message says where to look); 2 bad input
(unknown preset, parameter, missing files); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _cmd_lab_run(args: argparse.Namespace) -> int:
    from labkit import lab

    overrides = [lab.parse_override(text) for text in args.set or []]
    run = lab.run_lab(args.preset, overrides=overrides, only=args.only, progress=not args.quiet)
    print(f"\nlab run complete: {run.run_dir}")
    for path in run.executed:
        print(f"  executed notebook: {path}  ({run.seconds[path.stem]:.1f} s)")
    return EXIT_OK


def _cmd_lab_presets(args: argparse.Namespace) -> int:
    from labkit import lab

    for name, description in lab.available_presets().items():
        print(f"{name:10s} {description}")
    return EXIT_OK


def _cmd_train(args: argparse.Namespace) -> int:
    from labkit import paths
    from labkit.model import TrainConfig, train_and_export

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
    from labkit.image import build_bundle, build_image

    model_dir = paths.resolve_model_dir(args.model)
    out = args.out or paths.default_bundle_dir(model_dir)
    bundle = build_bundle(model_dir, out)
    print(f"bundle of model {bundle.model_name} {bundle.model_version}: {bundle.path}")
    if args.image:
        print(build_image(bundle, args.tag).message)
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
        "--only", nargs="+", metavar="NB", help="run only these notebooks (stems or numbers)"
    )
    run.add_argument("--quiet", action="store_true", help="no per-cell progress bar")
    run.set_defaults(func=_cmd_lab_run)
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
    bundle.add_argument("--model", default=None, help="model folder or name (default: mnist-cnn)")
    bundle.add_argument("--out", default=None, help="bundle folder (default: bundles/<model>)")
    bundle.add_argument("--image", action="store_true", help="also `docker build` the image")
    bundle.add_argument("--tag", default="labkit-mnist:latest", help="image tag for --image")
    bundle.set_defaults(func=_cmd_bundle)

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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``labkit`` command; returns the exit code."""
    from labkit.data import MnistNotFoundError
    from labkit.function.model_io import ModelLoadError
    from labkit.lab import LabError, NotebookFailedError
    from labkit.model import ModelArtifactError

    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (
        LabError, MnistNotFoundError, ModelArtifactError, ModelLoadError, FileNotFoundError,
        ValueError,
    ) as exc:  # fmt: skip
        print(f"labkit: error: {exc}", file=sys.stderr)
        return EXIT_FAILED if isinstance(exc, NotebookFailedError) else EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
