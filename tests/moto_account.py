"""moto's AWS as the tests use it: Lambda without Docker, and of AWS's managed policies only
those the kit attaches.

moto can load all of AWS's ~1,600 managed policies into each mocked account: 0.7 CPU s per
test, ~100 CPU s of a suite that mocks an account ~150 times. The kit attaches one
(``labkit.aws.deploy.BASIC_LOGGING_POLICY``), so only that one is loaded; attaching any
other AWS-managed policy fails here as it would for a policy that does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import pytest
from moto import mock_aws

from labkit.aws.deploy import BASIC_LOGGING_POLICY

CONFIG = {"lambda": {"use_docker": False}, "iam": {"load_aws_managed_policies": True}}


@cache
def _kit_policies() -> str:
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    every = json.loads(aws_managed_policies_data)
    name = BASIC_LOGGING_POLICY.rsplit("/", 1)[1]
    return json.dumps({name: every[name]})


@contextmanager
def mocked_account(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Inside: every boto3 call goes to moto (the caller sets fake credentials)."""
    monkeypatch.setattr("moto.iam.models.aws_managed_policies_data", _kit_policies())
    with mock_aws(config=CONFIG):
        yield
