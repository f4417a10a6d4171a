"""Real AWS Lambda as a backend: the deployed function, invoked through boto3."""

from __future__ import annotations

from typing import Any

from labkit.backends.base import Backend
from labkit.invoke import InvocationResult, LambdaInvoker
from labkit.settings import FunctionSettings


class AwsBackend(Backend):
    """The function deployed by :mod:`labkit.deploy` (``labkit deploy up``, notebook 03)."""

    kind = "aws"
    #: A new AWS account's concurrency limit is 10 (raise it with a quota request).
    default_concurrency = 10
    options = ("region", "image_uri", "max_budget_usd", "expected_invocations")

    def __init__(
        self,
        function: FunctionSettings,
        region: str | None = None,
        image_uri: str | None = None,
        max_budget_usd: float | None = None,
        expected_invocations: int = 2000,
    ) -> None:
        super().__init__(function)
        self.region = region
        self.image_uri = image_uri
        self.max_budget_usd = max_budget_usd
        self.expected_invocations = expected_invocations
        self._invoker: LambdaInvoker | None = None

    def deploy_config(self) -> Any:
        from labkit.deploy import DeployConfig

        return DeployConfig(function=self.function, region=self.region, image_uri=self.image_uri)

    def start(self) -> None:
        self._invoker = LambdaInvoker(region=self.region, max_connections=self.concurrency)
        self.region = self._invoker.client.meta.region_name

    def invoke(self, event: dict[str, Any]) -> InvocationResult:
        if self._invoker is None:
            self.start()
        assert self._invoker is not None
        return self._invoker.invoke(self.function.name, event)

    def facts(self) -> dict[str, Any]:
        return super().facts() | {"region": self.region, "function": self.function.name}

    def stop(self) -> None:
        self._invoker = None

    def deploy(self, bundle: Any = None, *, smoke_event: Any = None,
               progress: Any = print) -> str:  # fmt: skip
        from labkit.deploy import plan_and_deploy

        rollout = plan_and_deploy(
            self.deploy_config(), bundle=bundle, smoke_event=smoke_event,
            expected_invocations=self.expected_invocations, max_budget_usd=self.max_budget_usd,
            progress=progress,
        )  # fmt: skip
        self.region = rollout.deployed.region
        return f"aws: {rollout.deployed!r}"

    def teardown(self) -> list[str]:
        from labkit.deploy import AwsDeployment

        return AwsDeployment(self.deploy_config()).teardown()
