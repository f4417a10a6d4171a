"""The function bundle (what the image's task root holds) and ``docker build`` where possible.

A *bundle* is a folder that is both the Docker build context and what the embedded local
Lambda runs directly::

    bundle/
      Dockerfile, requirements.txt   (from docker/)
      bundle.json                    (handler, model name/version, file list)
      labkit_function/               (copy of labkit/function/*.py)
      model/model.pt, model/model.json

The bundle is written into a temporary sibling folder and renamed into place, so a failed
build never leaves a half bundle that looks complete.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit import paths

FUNCTION_PACKAGE = "labkit_function"
HANDLER = f"{FUNCTION_PACKAGE}.handler.handler"
FUNCTION_SOURCE = Path(__file__).resolve().parent.parent / "function"
MANIFEST = "bundle.json"


@dataclass(frozen=True)
class Bundle:
    """A bundle folder and what it serves."""

    path: Path
    handler: str
    model_name: str
    model_version: str
    input: str | None = None  # any model's input spec (the MNIST bundle: None)
    codec: str | None = None
    slo_ms: float | None = None  # the SLO the model is measured at, where it has one
    largest_batch: int | None = None  # instances one synchronous invocation can carry

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Bundle:
        """An existing bundle; ``FileNotFoundError`` naming the fix when it is not one."""
        path = Path(path)
        manifest = path / MANIFEST
        if not manifest.is_file():
            raise FileNotFoundError(
                f"{path} is not a function bundle (no {MANIFEST}); build one with "
                "`labkit bundle` or labkit.aws.image.build_bundle()"
            )
        data = json.loads(manifest.read_text())
        return cls(path, data["handler"], data["model"]["name"], data["model"]["version"],
                   data.get("input"), data.get("codec"), data.get("slo_ms"),
                   data.get("largest_batch"))  # fmt: skip


ONNX_HANDLER = f"{FUNCTION_PACKAGE}.onnx_handler.handler"
# What each variant ships: function sources, model files, and its Dockerfile/requirements.
VARIANTS: dict[str, dict[str, Any]] = {
    "torch": {"handler": HANDLER, "exclude": {"onnx_handler.py"},
              "docker": {"Dockerfile": "Dockerfile", "requirements.txt": "requirements.txt"}},
    "onnx": {"handler": ONNX_HANDLER, "only": {"__init__.py", "codec.py", "onnx_handler.py"},
             "docker": {"Dockerfile.onnx": "Dockerfile", "requirements-onnx.txt": "requirements.txt"}},
}  # fmt: skip


def build_bundle(
    model_dir: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    *,
    variant: str = "torch",
) -> Bundle:
    """Lay out the image's task root for the model in ``model_dir`` into ``out_dir``.

    The model is loaded first, so a missing or mismatched artefact fails here with a clear
    ``ModelLoadError`` rather than at the function's first cold start. An existing bundle at
    ``out_dir`` is replaced only once the new one is complete.
    """
    # deferred: torch loads only when a bundle is built, not for `labkit --help` or a deploy
    from labkit.function.model_io import METADATA_FILE, WEIGHTS_FILE, load_model

    if variant not in VARIANTS:
        raise ValueError(f"unknown bundle variant {variant!r}; known: {', '.join(VARIANTS)}")
    spec = VARIANTS[variant]
    model_dir = paths.resolve_model_dir(model_dir)
    _, metadata = load_model(model_dir)
    out = Path(out_dir).resolve()
    with staged_bundle(out) as staging:
        package = staging / FUNCTION_PACKAGE
        package.mkdir()
        for source in sorted(FUNCTION_SOURCE.glob("*.py")):
            if source.name in spec.get("exclude", ()) or (
                "only" in spec and source.name not in spec["only"]
            ):
                continue
            shutil.copy2(source, package / source.name)
        (staging / "model").mkdir()
        shutil.copy2(model_dir / METADATA_FILE, staging / "model" / METADATA_FILE)
        if variant == "onnx":
            _export_checked_onnx(model_dir, staging / "model" / "model.onnx")
        else:
            shutil.copy2(model_dir / WEIGHTS_FILE, staging / "model" / WEIGHTS_FILE)
        for source_name, name in spec["docker"].items():
            shutil.copy2(paths.docker_dir() / source_name, staging / name)
        write_manifest(staging, {
            "handler": spec["handler"],
            "variant": variant,
            "model": {"name": metadata.get("name"), "version": metadata.get("version")},
            "source_model_dir": str(model_dir),
        })  # fmt: skip
    return Bundle.open(out)


@contextlib.contextmanager
def staged_bundle(out: Path) -> Iterator[Path]:
    """A temporary sibling folder of ``out`` to lay a bundle out in: once the block ends
    it replaces ``out``; if the block fails it is removed, so a failed build never leaves a
    half bundle that looks complete (nor touches the one already there)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield staging
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_manifest(staging: Path, manifest: dict[str, Any]) -> None:
    """``bundle.json`` in ``staging``: ``manifest`` and the list of the bundle's files."""
    files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
    (staging / MANIFEST).write_text(json.dumps({**manifest, "files": files}, indent=2))


def ensure_bundle(
    model_dir: str | os.PathLike[str] | None = None,
    bundle_dir: str | os.PathLike[str] | None = None,
    *,
    run_dir: str | os.PathLike[str] | None = None,
    variant: str = "torch",
    train_if_missing: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Bundle:
    """The bundle a notebook works with: ``bundle_dir`` opened as it is when given, else
    built from the model (``model_dir``, default ``models/mnist-cnn``) into the lab run's
    ``bundle`` folder or ``bundles/<model>`` (``-onnx`` appended for that variant).

    ``train_if_missing``: where the *default* model was never trained (a fresh clone), train
    it first with the lab's settings (notebook 01's, about a minute on 2 cores), saying so on
    ``progress``, as a newcomer's first ``labkit run`` or ``labkit deploy up`` needs. A model
    folder that was named is never trained behind the caller's back."""
    if bundle_dir:
        return Bundle.open(bundle_dir)
    model = paths.resolve_model_dir(model_dir)
    if train_if_missing and model_dir in (None, "") and not _model_complete(model):
        _train_default(model, progress or (lambda message: None))
    return build_bundle(model, paths.default_bundle_dir(model, run_dir, variant), variant=variant)


def existing_bundle(model_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The default bundle of ``model_dir`` when one was built (``bundles/<model>``)."""
    folder = paths.default_bundle_dir(paths.resolve_model_dir(model_dir))
    return folder if (folder / "bundle.json").is_file() else None


def _model_complete(model: Path) -> bool:
    from labkit.function.model_io import is_complete  # deferred: torch

    return is_complete(model)


def _train_default(model: Path, say: Callable[[str], None]) -> None:
    # deferred: torch and the training loop, only on a fresh clone's first run
    from labkit.models.mnist import TrainConfig, train_and_export

    say(f"no trained model at {model} yet: training the lab's MNIST CNN first (notebook 01's "
        "settings, about a minute on 2 cores; `labkit train` does the same)")  # fmt: skip
    outcome = train_and_export(TrainConfig(), model)
    say(f"trained {model}: test accuracy {outcome.evaluation.accuracy_pct:.2f} %")


def _export_checked_onnx(model_dir: Path, out: Path, n_check: int = 512) -> None:
    """Export to ONNX and check ONNX Runtime's labels equal PyTorch's on generated digits."""
    import numpy as np
    import torch

    # deferred: onnx and onnxruntime are an optional extra (onnx), torch is heavy
    from labkit.data import synthetic_mnist
    from labkit.function.model_io import load_model
    from labkit.function.net import preprocess
    from labkit.models.onnx_export import OnnxClassifier, export_onnx

    export_onnx(model_dir, out)
    model, _ = load_model(model_dir)
    images = synthetic_mnist(n_check, seed=123).images
    with torch.inference_mode():
        expected = model(preprocess(images)).numpy()
    got = OnnxClassifier(out).logits(images.numpy())
    if not (
        np.array_equal(expected.argmax(1), got.argmax(1)) and np.allclose(expected, got, atol=1e-3)
    ):
        raise RuntimeError(
            f"the ONNX export of {model_dir} does not reproduce PyTorch's predictions"
        )


def dockerfile_copy_sources(dockerfile: Path) -> list[str]:
    """The source paths of every ``COPY`` instruction (flags such as ``--chown`` skipped)."""
    sources = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words and words[0].upper() == "COPY":
            args = [w for w in words[1:] if not w.startswith("--")]
            sources.extend(args[:-1])
    return sources


def load_handler(bundle: Bundle | str | os.PathLike[str]) -> Callable[[Any, Any], Any]:
    """Import the bundle's handler in this process, as the runtime would, and return it.

    The function package is imported from the bundle folder (not from ``labkit``), with
    ``LAMBDA_TASK_ROOT`` pointing at the bundle so it finds its model. Importing it loads the
    model: an init error surfaces here as ``ModelLoadError``.
    """
    bundle = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
    for name in [
        m for m in sys.modules if m == FUNCTION_PACKAGE or m.startswith(FUNCTION_PACKAGE + ".")
    ]:
        del sys.modules[name]
    package_dir = bundle.path / FUNCTION_PACKAGE
    spec = importlib.util.spec_from_file_location(
        FUNCTION_PACKAGE, package_dir / "__init__.py", submodule_search_locations=[str(package_dir)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[FUNCTION_PACKAGE] = module
    spec.loader.exec_module(module)
    previous = os.environ.get("LAMBDA_TASK_ROOT")
    os.environ["LAMBDA_TASK_ROOT"] = str(bundle.path)
    try:
        handler_module = importlib.import_module(bundle.handler.rsplit(".", 1)[0])
    finally:
        if previous is None:
            os.environ.pop("LAMBDA_TASK_ROOT", None)
        else:
            os.environ["LAMBDA_TASK_ROOT"] = previous
    return getattr(handler_module, bundle.handler.rsplit(".", 1)[1])


@dataclass(frozen=True)
class ImageBuild:
    """The outcome of :func:`build_image`: built or not, and why."""

    built: bool
    tag: str
    message: str


def docker_engine_status(docker: str = "docker") -> tuple[bool, str]:
    """(reachable, explanation) for the Docker engine behind the ``docker`` CLI."""
    if shutil.which(docker) is None:
        return False, f"the `{docker}` command is not installed"
    try:
        probe = subprocess.run(
            [docker, "version", "--format", "{{.Server.Version}}"],
            capture_output=True, text=True, timeout=15, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return False, "the Docker engine did not answer within 15 s"
    if probe.returncode != 0 or not probe.stdout.strip():
        detail = (probe.stderr.strip().splitlines() or ["no server version"])[-1]
        return False, f"the Docker CLI is installed but no engine is reachable ({detail})"
    return True, f"Docker engine {probe.stdout.strip()}"


#: Docker's platform for each Lambda architecture.
PLATFORMS = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}


def docker_builder(docker: str = "docker") -> str:
    """``"buildx"`` when the Docker CLI has BuildKit's buildx plugin, else ``"legacy"``: the
    legacy builder knows neither ``--provenance`` nor ``--sbom`` (it stops at "unknown
    flag"), and makes single-platform images anyway."""
    try:
        probe = subprocess.run([docker, "buildx", "version"], capture_output=True, text=True,
                               timeout=15, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return "legacy"
    return "buildx" if probe.returncode == 0 else "legacy"


def build_command(bundle_dir: str | os.PathLike[str], tag: str, architecture: str = "x86_64",
                  docker: str = "docker", builder: str = "buildx") -> list[str]:  # fmt: skip
    """The build that makes an image Lambda accepts, for ``builder``
    (:func:`docker_builder`): the architecture's platform; with buildx no provenance or SBOM
    attestation (BuildKit otherwise makes an image *index* with an attestation manifest, which
    Lambda refuses: "image manifest media type not supported") and ``--load`` (a
    ``docker-container`` builder otherwise leaves the image in its cache, not in the local
    store the push reads)."""
    if architecture not in PLATFORMS:
        raise ValueError(
            f"architecture must be one of {', '.join(PLATFORMS)}, not {architecture!r}"
        )
    if builder == "legacy":
        return [docker, "build", "--platform", PLATFORMS[architecture], "-t", tag, str(bundle_dir)]
    return [docker, "buildx", "build", "--platform", PLATFORMS[architecture], "--provenance=false",
            "--sbom=false", "--load", "--progress=plain", "-t", tag, str(bundle_dir)]  # fmt: skip


def build_image(
    bundle: Bundle | str | os.PathLike[str],
    tag: str = "labkit-mnist:latest",
    *,
    architecture: str = "x86_64",
    docker: str = "docker",
    progress: Callable[[str], None] | None = None,
) -> ImageBuild:
    """``docker build`` the bundle when an engine is reachable; otherwise say why not.

    Docker's output is passed to ``progress`` line by line as it comes (a PyTorch image takes
    minutes, longer under emulation for another architecture, and must not look hung).
    Never raises for a missing engine: the bundle alone is enough for the embedded local
    Lambda, so the result says plainly that only the bundle was built. A failing build
    raises ``RuntimeError`` with the end of Docker's output.
    """
    bundle = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
    if not re.fullmatch(r"[a-z0-9][a-z0-9._/:-]*", tag):
        raise ValueError(f"invalid image tag {tag!r} (lower-case letters, digits, . _ / : -)")
    build_command(bundle.path, tag, architecture, docker)  # checks the architecture first
    reachable, why = docker_engine_status(docker)
    if not reachable:
        return ImageBuild(
            False, tag,
            f"built the bundle only ({bundle.path}); no image because {why}. The embedded "
            "local Lambda runs the bundle as it is; to deploy to AWS, build where Docker runs.",
        )  # fmt: skip
    command = build_command(bundle.path, tag, architecture, docker, docker_builder(docker))
    output: list[str] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          bufsize=1) as build:  # fmt: skip
        assert build.stdout is not None
        for line in build.stdout:
            output.append(line.rstrip())
            if progress is not None:
                progress(line.rstrip())
    if build.returncode != 0:
        tail = "\n".join(output[-20:])
        raise RuntimeError(f"docker build failed ({' '.join(command)}):\n{tail}")
    return ImageBuild(True, tag, f"built image {tag} ({architecture}) from {bundle.path} ({why})")


# ----------------------------------------------------------------------------- base images
@dataclass(frozen=True)
class LambdaBaseImage:
    """An AWS Lambda Python base image: its Python and the glibc of its Amazon Linux."""

    image: str
    python: str
    glibc: tuple[int, int]
    system: str


LAMBDA_BASE_IMAGES = {
    base.image: base
    for base in (
        LambdaBaseImage("public.ecr.aws/lambda/python:3.9", "3.9", (2, 26), "Amazon Linux 2"),
        LambdaBaseImage("public.ecr.aws/lambda/python:3.10", "3.10", (2, 26), "Amazon Linux 2"),
        LambdaBaseImage("public.ecr.aws/lambda/python:3.11", "3.11", (2, 26), "Amazon Linux 2"),
        LambdaBaseImage("public.ecr.aws/lambda/python:3.12", "3.12", (2, 34), "Amazon Linux 2023"),
        LambdaBaseImage("public.ecr.aws/lambda/python:3.13", "3.13", (2, 34), "Amazon Linux 2023"),
    )
}  # AWS Lambda runtimes documentation: python3.12 and later run on Amazon Linux 2023
_WHEEL_ARCH = {"x86_64": "x86_64", "arm64": "aarch64"}


def base_image(dockerfile: str | os.PathLike[str]) -> LambdaBaseImage:
    """The Lambda base image a Dockerfile builds ``FROM``; ``ValueError`` for one the kit
    does not know the platform of."""
    for line in Path(dockerfile).read_text().splitlines():
        words = line.split()
        if words and words[0].upper() == "FROM":
            image = next(w for w in words[1:] if not w.startswith("--"))
            if image not in LAMBDA_BASE_IMAGES:
                raise ValueError(f"{dockerfile}: unknown base image {image!r}; known: "
                                 f"{', '.join(LAMBDA_BASE_IMAGES)}")  # fmt: skip
            return LAMBDA_BASE_IMAGES[image]
    raise ValueError(f"{dockerfile} has no FROM line")


def platform_tags(base: LambdaBaseImage, architecture: str = "x86_64") -> list[str]:
    """Every wheel platform tag pip accepts on ``base``: manylinux_2_X for each glibc from
    the image's down to 2_17, and the legacy aliases (pip's ``--platform`` takes each tag
    literally and implies no older one)."""
    arch = _WHEEL_ARCH[architecture]
    major, minor = base.glibc
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 16, -1)]
    tags.append(f"manylinux2014_{arch}")
    if arch == "x86_64":
        tags += ["manylinux2010_x86_64", "manylinux1_x86_64"]
    return tags


@dataclass(frozen=True)
class WheelCheck:
    """Whether every requirement of an image has a wheel for its base's platform."""

    ok: bool
    base: LambdaBaseImage
    architecture: str
    command: list[str]
    output: str


def check_wheels(dockerfile: str | os.PathLike[str], requirements: str | os.PathLike[str],
                 architecture: str = "x86_64", *, index_url: str = "https://pypi.org/simple",
                 timeout_s: float = 600.0) -> WheelCheck:  # fmt: skip
    """Resolve ``requirements`` as ``pip`` inside the image would (wheels only, the base's
    Python and platform tags, each requirement itself) without installing anything, so a
    base/wheel mismatch shows before a ``docker build`` fails. Reads PyPI (whose PyTorch
    wheels carry the same platform tags as the CPU index's) with no pip configuration of
    this machine."""
    base = base_image(dockerfile)
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps",
               "--only-binary=:all:", "--python-version", base.python, "--implementation", "cp",
               "--target", tempfile.gettempdir() + "/labkit-wheel-check", "--index-url", index_url,
               "--quiet", "--disable-pip-version-check", "-r", str(requirements)]  # fmt: skip
    for tag in platform_tags(base, architecture):
        command += ["--platform", tag]
    env = os.environ | {"PIP_CONFIG_FILE": os.devnull}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout_s,
                          check=False)  # fmt: skip
    return WheelCheck(done.returncode == 0, base, architecture, command,
                      (done.stdout + done.stderr).strip())  # fmt: skip
