"""Real AWS Lambda as a backend: the deployed function, checked, freshened and invoked.

Before a cell, :meth:`AwsBackend.start` runs a preflight (credentials, region, the function
exists and is Active, its alias's provisioned concurrency is READY) and makes the function
*fresh*: a configuration change (an environment variable naming the cell) retires every warm
execution environment, so the cell pays its own cold starts as it does on the local backend;
the change is waited for. Functions with provisioned concurrency are not freshened: their
instances are warm on purpose, and invocations go to the alias that holds them.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from labkit.aws import deploy
from labkit.aws.account import (
    CredentialsError,
    FunctionNotReadyError,
    aws_errors,
    check_credentials,
    explain_state,
    resolve_region,
)
from labkit.aws.deploy import (
    FRESH_VARIABLE,
    AwsDeployment,
    DeployConfig,
    plan_and_deploy,
    wait_for_function,
    wake_if_inactive,
)
from labkit.aws.invoke import InvocationResult, LambdaInvoker
from labkit.aws.queue_source import AwsQueueSource, teardown
from labkit.backends.base import Backend, unavailable
from labkit.load.queue_run import drive, queue_cell
from labkit.settings import FunctionSettings


def _say(message: str) -> None:
    print(message, file=sys.stderr)


T = TypeVar("T")

DEPLOY_HINT = "deploy it first: `labkit deploy up` (or notebook 03 with target='aws')"


class AwsBackend(Backend):
    """The function deployed by :mod:`labkit.aws.deploy` (``labkit deploy up``, notebook 03)."""

    kind = "aws"
    #: A new AWS account's concurrency limit is 10 (raise it with a quota request).
    default_concurrency = 10
    options = ("region", "image_uri", "max_budget_usd", "expected_invocations", "role_arn",
               "fresh", "apply_memory")  # fmt: skip

    def __init__(
        self,
        function: FunctionSettings,
        region: str | None = None,
        image_uri: str | None = None,
        max_budget_usd: float | None = None,
        expected_invocations: int = 2000,
        role_arn: str | None = None,
        fresh: bool = True,
        apply_memory: bool = False,
        session: Any = None,
    ) -> None:
        """``fresh``: retire warm environments before each cell (see the module docstring).
        ``apply_memory``: the same update also sets the function's memory to
        ``function.memory_mb`` (``labkit tune --validate --backend aws`` runs each configuration
        at its own memory); otherwise the deployed function's memory is what runs."""
        super().__init__(function)
        self.region = region
        self.image_uri = image_uri
        self.max_budget_usd = max_budget_usd
        self.expected_invocations = expected_invocations
        self.role_arn = role_arn
        self.fresh = fresh
        self.apply_memory = apply_memory
        self._session = session
        self._owns_session = session is None  # a session the caller gave is theirs to renew
        self._invoker: LambdaInvoker | None = None
        self._checked: dict[str, Any] = {}

    def deploy_config(self) -> Any:
        return DeployConfig(function=self.function, region=self.region, image_uri=self.image_uri,
                            role_arn=self.role_arn)  # fmt: skip

    @property
    def qualifier(self) -> str | None:
        """The alias holding provisioned concurrency, when the function has any."""
        return self.deploy_config().qualifier

    def session(self) -> Any:
        import boto3

        if self._session is None:
            self._session = boto3.session.Session(region_name=self.region)
        return self._session

    def precheck(self) -> None:
        """Credentials and region, before the cell loads its payloads (PyTorch and the digits:
        seconds), so that missing or expired credentials are said at once."""
        self._reading_credentials_again(self._credentials)

    def _reading_credentials_again(self, check: Callable[[], T]) -> T:
        """``check()``; if the credentials are refused and the session is the backend's own,
        once more on a new session, which reads the environment and ~/.aws afresh: an AWS
        Academy student pastes new ones after four hours and carries on, without restarting
        the kernel."""
        try:
            return check()
        except CredentialsError:
            if not self._owns_session:
                raise
            self._session = None
            return check()

    def _credentials(self) -> Any:
        session = self.session()
        self.region = resolve_region(session, self.region)
        return check_credentials(session, self.region, "checking AWS credentials before the run")

    def preflight(self) -> dict[str, Any]:
        """Credentials, region, the function Active (and its alias READY; an Inactive one is
        woken): what is wrong is raised with the command that fixes it; what was found is
        returned. Credentials that expired are read again once."""
        return self._reading_credentials_again(self._preflight)

    def _preflight(self) -> dict[str, Any]:
        identity = self._credentials()
        session = self.session()
        client = session.client("lambda", region_name=self.region)
        name = self.function.name
        with aws_errors(f"looking up the function {name}"):
            try:
                found = client.get_function(FunctionName=name)["Configuration"]
            except client.exceptions.ResourceNotFoundException:
                raise FunctionNotReadyError(
                    f"there is no function {name!r} in {self.region}; {DEPLOY_HINT}, or pass the "
                    "function's --function-name and --region"
                ) from None
            if wake_if_inactive(client, name, found, delay_s=deploy.STATE_POLL_S, progress=_say):
                found = client.get_function(FunctionName=name)["Configuration"]
            if found.get("State") != "Active" or found.get("LastUpdateStatus") not in (
                None,
                "Successful",
            ):
                raise FunctionNotReadyError(f"{explain_state(name, found)} ({DEPLOY_HINT})")
            if self.qualifier:
                try:
                    status = client.get_provisioned_concurrency_config(
                        FunctionName=name, Qualifier=self.qualifier
                    )
                except client.exceptions.ProvisionedConcurrencyConfigNotFoundException:
                    raise FunctionNotReadyError(
                        f"{name}:{self.qualifier} has no provisioned concurrency; `labkit deploy "
                        f"up --provisioned {self.function.provisioned}` sets it (or run without "
                        "provisioned instances)"
                    ) from None
                if status.get("Status") != "READY":
                    raise FunctionNotReadyError(
                        f"provisioned concurrency of {name}:{self.qualifier} is {status.get('Status')}, "
                        "not READY; wait for it (`labkit deploy up` waits) and run again"
                    )
        return {"identity": identity, "function": name, "memory_mb": found.get("MemorySize"),
                "architecture": (found.get("Architectures") or ["x86_64"])[0],
                "qualifier": self.qualifier}  # fmt: skip

    def freshen(self) -> None:
        """Retire the function's warm environments: change an environment variable (and the
        memory, with ``apply_memory``), wait until the update is Successful (new invocations
        then start new environments)."""
        self._update(memory_mb=self.function.memory_mb if self.apply_memory else None)

    def resize(self, memory_mb: int) -> None:
        """Set the deployed function's memory (and so retire its warm environments)."""
        self._update(memory_mb=memory_mb)

    def _update(self, *, memory_mb: int | None) -> None:
        client = self.session().client("lambda", region_name=self.region)
        name = self.function.name
        with aws_errors(f"starting fresh execution environments of {name}"):
            current = client.get_function_configuration(FunctionName=name)
            variables = dict(current.get("Environment", {}).get("Variables", {}))
            variables[FRESH_VARIABLE] = uuid.uuid4().hex
            memory = {} if memory_mb is None else {"MemorySize": memory_mb}
            client.update_function_configuration(
                FunctionName=name, Environment={"Variables": variables}, **memory
            )
            wait_for_function(
                client, name, "function_updated_v2", delay_s=deploy.UPDATE_POLL_S, max_attempts=300
            )

    def start(self) -> None:
        self._checked = self.preflight()
        if self.fresh and not self.qualifier:
            self.freshen()
        self._invoker = LambdaInvoker(region=self.region, max_connections=self.concurrency,
                                      session=self.session())  # fmt: skip

    def invoke(self, event: dict[str, Any]) -> InvocationResult:
        if self._invoker is None:
            raise RuntimeError("the AWS backend is not started")
        return self._invoker.invoke(self.function.name, event, qualifier=self.qualifier)

    def run_queue_cell(self, arrivals: Any, mapping: Any, payloads: Any, *, slo_s: float,
                       journal: Any = None) -> Any:  # fmt: skip
        """The kit's queues in front of the deployed function (:mod:`labkit.aws.queue_source`):
        switching the function to the SQS handler retires its warm environments, so the cell
        pays its own cold starts; afterwards the mapping is deleted and the function gets its
        own handler back. Invocations' figures come from CloudWatch Logs' REPORT lines."""
        import time

        import numpy as np

        self._checked = self.preflight()
        if self.apply_memory:
            self.resize(self.function.memory_mb)
        source = AwsQueueSource(AwsDeployment(self.deploy_config(), session=self.session()))
        made = source.deploy(mapping)
        try:
            began = time.time()
            sqs = self.session().client("sqs", region_name=self.region)
            times = np.asarray(arrivals, dtype=float)
            run = drive(sqs, made.requests_url, made.answers_url, times, payloads,
                        journal=journal, drain_s=60.0)  # fmt: skip
            invoked = {str(body.get("invocation")) for _, body in run.answers.values()}
            lines = source.report_lines(began - 5.0, invoked)
        finally:
            source.detach(made)
        cell = queue_cell(run, lines, times, payloads, mapping, slo_s=slo_s,
                          concurrency=self.concurrency)  # fmt: skip
        return cell.result

    def facts(self) -> dict[str, Any]:
        facts = super().facts() | {"region": self.region, "function": self.function.name,
                                   "qualifier": self.qualifier,
                                   "fresh_environments": self.fresh and not self.qualifier}  # fmt: skip
        facts["preflight"] = self._checked or unavailable("preflight", RuntimeError("not run"))
        return facts

    def stop(self) -> None:
        self._invoker = None

    def deploy(self, bundle: Any = None, *, smoke_event: Any = None,
               progress: Any = print) -> str:  # fmt: skip
        rollout = plan_and_deploy(
            self.deploy_config(), bundle=bundle, smoke_event=smoke_event,
            expected_invocations=self.expected_invocations, max_budget_usd=self.max_budget_usd,
            progress=progress, session=self.session(),
        )  # fmt: skip
        self.region = rollout.deployed.region
        return f"aws: {rollout.deployed!r}"

    def teardown(self) -> list[str]:

        return teardown(AwsDeployment(self.deploy_config(), session=self.session()))
