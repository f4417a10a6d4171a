"""The function bundle: what the image's task root holds, and building without Docker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from labkit import paths
from labkit.aws import image
from labkit.aws.image import (
    Bundle,
    build_bundle,
    build_image,
    dockerfile_copy_sources,
    load_handler,
)
from labkit.data import make_event, synthetic_mnist
from labkit.function.model_io import ModelLoadError


@pytest.fixture(scope="module")
def bundle(trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return build_bundle(trained_model_dir, tmp_path_factory.mktemp("b") / "bundle")


def test_every_dockerfile_copy_source_is_in_the_bundle(bundle: Bundle) -> None:
    sources = dockerfile_copy_sources(bundle.path / "Dockerfile")
    assert {"requirements.txt", "labkit_function/", "model/"} <= set(sources)
    for source in sources:
        assert (bundle.path / source).exists(), source
    manifest = json.loads((bundle.path / "bundle.json").read_text())
    assert manifest["handler"] == "labkit_function.handler.handler"
    assert "model/model.pt" in manifest["files"]


def test_dockerfile_cmd_names_the_bundle_handler(bundle: Bundle) -> None:
    text = (bundle.path / "Dockerfile").read_text()
    assert f'CMD ["{bundle.handler}"]' in text
    assert "public.ecr.aws/lambda/python" in text


def test_handler_imports_nothing_outside_the_bundle(bundle: Bundle) -> None:
    """Import the handler in a fresh interpreter where `labkit` cannot be imported."""
    script = (
        "import sys, json; sys.modules['labkit'] = None; "
        f"sys.path.insert(0, {str(bundle.path)!r}); "
        "import labkit_function.handler as h; "
        "print(json.dumps(sorted({k.split('.')[0] for k, m in sys.modules.items() if m})))"
    )
    env = {"LAMBDA_TASK_ROOT": str(bundle.path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd="/"
    )
    assert done.returncode == 0, done.stderr
    modules = set(json.loads(done.stdout))
    assert "labkit_function" in modules and "torch" in modules
    assert "labkit" not in modules


def test_handler_loaded_from_the_bundle_classifies(bundle: Bundle) -> None:
    handler = load_handler(bundle)
    response = handler(make_event(synthetic_mnist(5).images), None)
    assert len(response["predictions"]) == 5
    assert response["model"]["version"] == bundle.model_version


def test_bundle_of_a_missing_model_fails_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no complete model"):
        build_bundle(tmp_path / "no-model", tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()
    assert list(tmp_path.iterdir()) == []


def test_rebuild_replaces_the_bundle(bundle: Bundle, trained_model_dir: Path) -> None:
    (bundle.path / "stale.txt").write_text("left over")
    rebuilt = build_bundle(trained_model_dir, bundle.path)
    assert not (rebuilt.path / "stale.txt").exists()
    assert not [p for p in rebuilt.path.parent.iterdir() if p.name.startswith(".")]


def test_open_rejects_a_folder_that_is_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a function bundle"):
        Bundle.open(tmp_path)


def test_build_image_without_an_engine_says_why(bundle: Bundle, tmp_path: Path) -> None:
    result = build_image(bundle, docker=str(tmp_path / "no-docker-here"))
    assert not result.built
    assert "built the bundle only" in result.message and "not installed" in result.message


def test_build_image_with_cli_but_no_engine(bundle: Bundle, tmp_path: Path) -> None:
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    fake.chmod(0o755)
    result = build_image(bundle, docker=str(fake))
    assert not result.built and "no engine is reachable" in result.message
    assert "Cannot connect to the Docker daemon" in result.message


def test_build_image_rejects_a_bad_tag(bundle: Bundle) -> None:
    with pytest.raises(ValueError, match="invalid image tag"):
        build_image(bundle, tag="Not A Tag")


def test_real_dockerfile_copy_parsing(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM x\nCOPY --chown=1:1 a b /dest/\ncopy c /d\nRUN echo COPY\n")
    assert dockerfile_copy_sources(dockerfile) == ["a", "b", "c"]
    assert image.dockerfile_copy_sources(paths.docker_dir() / "Dockerfile")


def test_builds_make_images_lambda_accepts() -> None:
    command = image.build_command("bundles/x", "labkit-mnist:latest", "arm64")
    assert command[1:5] == ["buildx", "build", "--platform", "linux/arm64"]  # arm64 builds arm64
    assert "--provenance=false" in command and "--sbom=false" in command
    assert "--load" in command  # a docker-container builder keeps the image otherwise
    legacy = image.build_command("bundles/x", "labkit-mnist:latest", "arm64", builder="legacy")
    assert legacy[1:4] == ["build", "--platform", "linux/arm64"]
    assert not any(flag.startswith(("--provenance", "--sbom")) for flag in legacy)
    with pytest.raises(ValueError, match="architecture"):
        image.build_command("b", "t", "sparc")


FAKE_DOCKER = """#!/bin/sh
case "$1" in
  version) echo 27.0.1 ;;
  buildx) [ "$2" = version ] && exit {buildx} ; echo "$@" >> "{log}" ;;
  build) for a in "$@"; do case "$a" in --provenance*|--sbom*) echo "unknown flag: $a" >&2; exit 125;; esac; done
         echo "$@" >> "{log}" ;;
esac
"""


@pytest.mark.parametrize(("buildx", "used"), [(0, "buildx build"), (1, "build --platform")])
def test_the_build_fits_the_docker_builder_it_finds(
    bundle: Bundle, tmp_path: Path, buildx: int, used: str
) -> None:
    """Without buildx (the legacy builder), ``--provenance`` stops the build with "unknown
    flag": the kit builds without it there, and with buildx adds ``--load``."""
    docker = tmp_path / "docker"
    log = tmp_path / "calls.log"
    docker.write_text(FAKE_DOCKER.format(buildx=buildx, log=log))
    docker.chmod(0o755)
    built = image.build_image(bundle, "labkit-mnist:test", docker=str(docker))
    assert built.built, built.message
    assert log.read_text().startswith(used)


def test_every_dockerfile_builds_on_a_lambda_base_the_kit_knows() -> None:
    for name in ("Dockerfile", "Dockerfile.onnx"):
        base = image.base_image(paths.docker_dir() / name)
        assert base.system == "Amazon Linux 2023" and base.glibc == (2, 34)
    tags = image.platform_tags(image.LAMBDA_BASE_IMAGES["public.ecr.aws/lambda/python:3.12"])
    assert tags[0] == "manylinux_2_34_x86_64" and "manylinux_2_17_x86_64" in tags
    assert "manylinux2014_x86_64" in tags and "manylinux_2_16_x86_64" not in tags


def _pypi_reachable() -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=10):
            return True
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _pypi_reachable(), reason="PyPI is not reachable from here")
@pytest.mark.parametrize(
    ("dockerfile", "requirements", "architecture"),
    [("Dockerfile", "requirements.txt", "x86_64"), ("Dockerfile", "requirements.txt", "arm64"),
     ("Dockerfile.onnx", "requirements-onnx.txt", "x86_64")],
)  # fmt: skip
def test_every_requirement_has_a_wheel_for_the_image(
    dockerfile: str, requirements: str, architecture: str
) -> None:
    """pip resolves each requirement for the base image's Python and glibc (a dry run, no
    install), so a base/wheel mismatch fails here rather than in a student's docker build."""
    docker = paths.docker_dir()
    check = image.check_wheels(docker / dockerfile, docker / requirements, architecture)
    assert check.ok, check.output


@pytest.mark.slow
@pytest.mark.skipif(not _pypi_reachable(), reason="PyPI is not reachable from here")
def test_the_check_fails_on_the_old_amazon_linux_2_base(tmp_path: Path) -> None:
    """python:3.11 is Amazon Linux 2 (glibc 2.26): PyTorch's manylinux_2_28 wheels do not
    install there, which is why the Dockerfiles moved to python:3.12."""
    old = tmp_path / "Dockerfile"
    old.write_text("FROM public.ecr.aws/lambda/python:3.11\n")
    check = image.check_wheels(old, paths.docker_dir() / "requirements.txt")
    assert not check.ok and "torch" in check.output
