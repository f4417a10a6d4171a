"""What the AWS wing's tests share: moto's AWS (Lambda without Docker) answering as AWS
documents where moto does not (tests/aws/aws_answers.py), and a deployment on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from labkit.aws.deploy import AwsDeployment, DeployConfig
from labkit.settings import FunctionSettings
from tests.aws.aws_answers import AwsAnswers, aws_answers
from tests.moto_account import mocked_account

REGION = "us-east-1"


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsAnswers]:
    """What AWS answers that moto does not (an account of 1,000 concurrent executions unless
    a test says otherwise)."""
    with aws_answers(monkeypatch) as found:
        yield found


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, answers: AwsAnswers) -> Iterator[boto3.Session]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    with mocked_account(monkeypatch):
        yield boto3.Session(region_name=REGION)


def image_uri(session: boto3.Session, repository: str = "labkit-mnist") -> str:
    """An image 'already pushed' (moto keeps no layers; the URI is what Lambda needs)."""
    deployment = AwsDeployment(DeployConfig(repository=repository), session=session)
    return deployment.ensure_repository() + ":v1"


def deployer(session: boto3.Session, function: FunctionSettings | None = None,
             **kwargs: Any) -> tuple[AwsDeployment, list[str]]:  # fmt: skip
    messages: list[str] = []
    config = DeployConfig(function=function or FunctionSettings(),
                          **({"image_uri": image_uri(session)} | kwargs))  # fmt: skip
    return AwsDeployment(
        config, session=session, progress=messages.append, wait_delay_s=0.01
    ), messages
