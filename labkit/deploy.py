"""Deploying the function to real AWS Lambda as a container image (boto3).

Every step is idempotent, so a rerun repairs instead of duplicating: ensure the ECR
repository, push the image (or take an existing image URI), ensure an execution role with
only the basic logging policy, create or update the function, wait until it is Active and its
last update Successful, smoke-test it. Everything the kit creates carries the tag
``labkit=managed`` and :meth:`AwsDeployment.teardown` deletes exactly those resources.

Nothing here prints credentials, tokens or the account id: ARNs and image URIs shown to people
go through :func:`redact`. Calls that cost money are listed first by :meth:`AwsDeployment.plan`,
which also estimates the experiment's cost and refuses to start above ``max_budget_usd``.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from labkit import cost
from labkit.settings import FunctionSettings

MANAGED_TAG = ("labkit", "managed")
BASIC_LOGGING_POLICY = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
_ACCOUNT_ID = re.compile(r"(?<!\d)\d{12}(?!\d)")


def redact(text: str) -> str:
    """``text`` with every 12-digit AWS account id replaced by ``<account>``."""
    return _ACCOUNT_ID.sub("<account>", text)


class DeployError(RuntimeError):
    """A deployment step failed; the message says what to do."""


class CredentialsError(DeployError):
    """No usable AWS credentials (missing, expired or invalid)."""


class RegionError(DeployError):
    """No region configured, or the image lives in another region than the function."""


class PermissionDeniedError(DeployError):
    """The credentials lack a permission the step needs."""


class DockerUnavailableError(DeployError):
    """An image must be built or pushed but no Docker engine is reachable."""


class BudgetExceededError(DeployError):
    """The planned experiment is expected to cost more than ``max_budget_usd``."""


_CREDENTIAL_CODES = {
    "ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException",
    "InvalidSignatureException", "SignatureDoesNotMatch", "AuthFailure",
}  # fmt: skip
_PERMISSION_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}


@contextmanager
def aws_errors(step: str) -> Iterator[None]:
    """Turn botocore's credential, region and permission failures into messages that say
    what to do; other errors pass through unchanged."""
    from botocore.exceptions import (
        ClientError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        TokenRetrievalError,
    )

    try:
        yield
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise CredentialsError(
            f"{step}: no AWS credentials found ({type(exc).__name__}). Configure them with "
            "`aws configure` or `aws sso login --profile NAME` and set AWS_PROFILE, or export "
            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY."
        ) from None
    except TokenRetrievalError:
        raise CredentialsError(
            f"{step}: the SSO session has expired; run `aws sso login` and try again."
        ) from None
    except NoRegionError:
        raise RegionError(
            f"{step}: no AWS region configured; pass region=... or set AWS_REGION "
            "(e.g. `export AWS_REGION=us-east-1`)."
        ) from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        message = redact(exc.response.get("Error", {}).get("Message", str(exc)))
        if code in _CREDENTIAL_CODES:
            raise CredentialsError(
                f"{step}: AWS rejected the credentials ({code}: {message}). Refresh them "
                "(`aws sso login`, or new access keys) and try again."
            ) from None
        if code in _PERMISSION_CODES:
            raise PermissionDeniedError(
                f"{step}: permission denied ({code}: {message}). The identity needs ECR, "
                "Lambda and IAM role permissions (see README, 'Running on AWS')."
            ) from None
        raise


@dataclass(frozen=True)
class DeployConfig:
    """What to deploy and how: the function (:class:`labkit.settings.FunctionSettings`, the
    same settings every backend reads, so deploy and run agree on its name) and where it
    lives on AWS."""

    function: FunctionSettings = field(default_factory=FunctionSettings)
    repository: str = "labkit-mnist"
    image_tag: str = "latest"
    image_uri: str | None = None  # an image already in ECR: skip build and push
    role_name: str = "labkit-lambda-basic-execution"
    region: str | None = None  # None: the standard chain (AWS_REGION, profile)
    environment: dict[str, str] = field(default_factory=dict)
    reserved_concurrency: int | None = None
    alias: str = "live"  # provisioned concurrency needs a version or alias

    def __post_init__(self) -> None:
        if not float(self.function.timeout_s).is_integer():
            raise ValueError(
                f"AWS Lambda takes a whole number of seconds: timeout_s={self.function.timeout_s}"
            )
        if (self.reserved_concurrency or 0) < 0:
            raise ValueError("reserved_concurrency must be non-negative")

    @property
    def function_name(self) -> str:
        return self.function.name


@dataclass(frozen=True)
class PlannedChange:
    """One resource the deployment would create, update or leave as it is."""

    kind: str  # "ecr-repository", "image", "iam-role", "lambda-function", ...
    name: str
    action: str  # "create", "update", "keep", "push", "delete"
    detail: str = ""


@dataclass(frozen=True)
class Plan:
    """What :meth:`AwsDeployment.deploy` would do, and the experiment's expected cost."""

    region: str
    changes: list[PlannedChange]
    estimate: cost.Bill | None = None

    def table(self) -> str:
        """A readable listing, safe to print (no account ids)."""
        lines = [f"region {self.region}"]
        lines += [
            f"  {c.action:<7} {c.kind:<20} {redact(c.name)}  {c.detail}" for c in self.changes
        ]
        if self.estimate is not None:
            e = self.estimate
            lines.append(
                f"  estimated experiment cost: ${e.total_usd:.6f} ({e.requests} invocations, "
                f"{e.gb_s:.1f} GB-s; requests ${e.request_usd:.6f}, compute ${e.compute_usd:.6f}, "
                f"provisioned ${e.provisioned_usd:.6f}); ECR storage ~$0.10 per GB-month extra"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class Deployed:
    """A deployed function; ``repr`` and :meth:`summary` hide the account id."""

    function_name: str
    function_arn: str
    image_uri: str
    role_arn: str
    region: str
    qualifier: str | None = None  # the alias invocations should use, when provisioned

    def summary(self) -> dict[str, str]:
        return {k: redact(str(v)) for k, v in self.__dict__.items() if v is not None}

    def __repr__(self) -> str:
        return f"Deployed({self.summary()})"


class AwsDeployment:
    """Deploy, inspect and tear down the kit's function in one AWS account and region."""

    def __init__(
        self,
        config: DeployConfig | None = None,
        *,
        session: Any = None,
        progress: Callable[[str], None] | None = None,
        wait_delay_s: float = 2.0,
    ) -> None:
        import boto3

        self.config = config or DeployConfig()
        self.session = session or boto3.Session(region_name=self.config.region)
        self.region = self.config.region or self.session.region_name
        if not self.region:
            raise RegionError(
                "no AWS region configured; pass DeployConfig(region=...) or set AWS_REGION "
                "(e.g. `export AWS_REGION=us-east-1`)."
            )
        self._progress = progress or (lambda message: None)
        self.wait_delay_s = wait_delay_s
        self.ecr = self.session.client("ecr", region_name=self.region)
        self.iam = self.session.client("iam", region_name=self.region)
        self.lam = self.session.client("lambda", region_name=self.region)
        self.sts = self.session.client("sts", region_name=self.region)

    # ----------------------------------------------------------------- checks and plan
    def check_credentials(self) -> None:
        """Fail early, with advice, if the credentials are missing, expired or invalid."""
        with aws_errors("checking AWS credentials"):
            self.sts.get_caller_identity()

    def check_image_region(self, image_uri: str) -> None:
        """Lambda only runs images from ECR in its own region."""
        match = re.search(r"\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com", image_uri)
        if match and match.group(1) != self.region:
            raise RegionError(
                f"the image is in {match.group(1)} but the function would be in {self.region}; "
                f"Lambda needs the image in the same region: push it to {self.region} or deploy "
                f"with region={match.group(1)!r}."
            )

    def plan(
        self,
        *,
        expected_invocations: int = 0,
        expected_billed_ms: float = 100.0,
        expected_cold_starts: int = 0,
        expected_init_ms: float = 5000.0,
        experiment_seconds: float = 0.0,
        max_budget_usd: float | None = None,
    ) -> Plan:
        """Every change :meth:`deploy` would make (read-only calls only) and an estimated
        cost of the experiment; raises :class:`BudgetExceededError` above ``max_budget_usd``."""
        c = self.config
        self.check_credentials()
        changes: list[PlannedChange] = []
        with aws_errors("planning"):
            repo_exists = self._repository_uri() is not None
            changes.append(
                PlannedChange("ecr-repository", c.repository, "keep" if repo_exists else "create")
            )
            if c.image_uri:
                self.check_image_region(c.image_uri)
                changes.append(PlannedChange("image", c.image_uri, "keep", "existing image"))
            else:
                changes.append(
                    PlannedChange(
                        "image", f"{c.repository}:{c.image_tag}", "push", "docker build + push"
                    )
                )
            role = self._role_arn()
            changes.append(
                PlannedChange(
                    "iam-role",
                    c.role_name,
                    "keep" if role else "create",
                    "basic logging policy only",
                )
            )
            current = self._function_configuration()
            detail = f"{c.function.memory_mb} MB, {int(c.function.timeout_s)} s, {c.function.architecture}"
            if current is None:
                action = "create"
            else:
                changed = self._function_changes(current, c.image_uri, self._settings(role))
                action = "update" if any(changed) else "keep"
            changes.append(PlannedChange("lambda-function", c.function.name, action, detail))
            if c.reserved_concurrency is not None:
                changes.append(
                    PlannedChange(
                        "reserved-concurrency",
                        c.function.name,
                        "update",
                        str(c.reserved_concurrency),
                    )
                )
            if c.function.provisioned:
                changes.append(PlannedChange("provisioned-concurrency", f"{c.function.name}:{c.alias}", "update",
                                             f"{c.function.provisioned} instances (billed while set)"))  # fmt: skip
        known = self.region in cost.SAME_PRICE_REGIONS
        prices = cost.prices_for(self.region, c.function.architecture) if known else cost.Prices()
        bill = cost.estimate(expected_invocations, expected_billed_ms, c.function.memory_mb,
                             cold_starts=expected_cold_starts, init_ms=expected_init_ms, prices=prices)  # fmt: skip
        if c.function.provisioned and experiment_seconds:
            provisioned = cost.invocation_cost([], c.function.memory_mb, prices=prices,
                                               provisioned_instances=c.function.provisioned,
                                               provisioned_seconds=max(300.0, experiment_seconds))  # fmt: skip
            bill = cost.Bill(**(bill.__dict__ | {"provisioned_usd": provisioned.provisioned_usd}))
        plan = Plan(self.region, changes, bill)
        if max_budget_usd is not None and bill.total_usd > max_budget_usd:
            raise BudgetExceededError(
                f"the experiment is expected to cost ${bill.total_usd:.4f}, above "
                f"max_budget_usd=${max_budget_usd:.4f}; lower the request count or raise the "
                "budget.\n" + plan.table()
            )
        return plan

    # ----------------------------------------------------------------- steps
    def ensure_repository(self) -> str:
        """The repository's URI, creating it (tagged, scan on push) if needed."""
        c = self.config
        with aws_errors("ensuring the ECR repository"):
            uri = self._repository_uri()
            if uri:
                return uri
            self._progress(f"creating ECR repository {c.repository}")
            created = self.ecr.create_repository(
                repositoryName=c.repository,
                imageScanningConfiguration={"scanOnPush": True},
                tags=[{"Key": MANAGED_TAG[0], "Value": MANAGED_TAG[1]}],
            )
            return created["repository"]["repositoryUri"]

    def push_image(self, local_tag: str, *, docker: str = "docker") -> str:
        """Tag the local image ``local_tag`` into the repository and push it; returns the URI.

        The ECR token goes to ``docker login`` on stdin, never to a command line or output.
        """
        from labkit.image import docker_engine_status

        reachable, why = docker_engine_status(docker)
        if not reachable:
            raise DockerUnavailableError(
                f"pushing the image needs a Docker engine, but {why}. Start Docker (or build "
                "and push on a machine that has it) and pass DeployConfig(image_uri=...)."
            )
        repository_uri = self.ensure_repository()
        target = f"{repository_uri}:{self.config.image_tag}"
        with aws_errors("getting an ECR login token"):
            auth = self.ecr.get_authorization_token()["authorizationData"][0]
        import base64

        user, token = base64.b64decode(auth["authorizationToken"]).decode().split(":", 1)
        registry = auth["proxyEndpoint"]
        self._progress(f"pushing {redact(target)}")
        for command, stdin in (
            ([docker, "login", "--username", user, "--password-stdin", registry], token),
            ([docker, "tag", local_tag, target], None),
            ([docker, "push", target], None),
        ):
            done = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                tail = redact("\n".join((done.stdout + done.stderr).strip().splitlines()[-10:]))
                raise DeployError(f"`{redact(' '.join(command[:2]))}` failed:\n{tail}")
        return target

    def ensure_role(self) -> str:
        """An execution role Lambda can assume, with only the basic logging policy."""
        c = self.config
        with aws_errors("ensuring the IAM execution role"):
            arn = self._role_arn()
            if arn is None:
                self._progress(f"creating IAM role {c.role_name}")
                arn = self.iam.create_role(
                    RoleName=c.role_name,
                    AssumeRolePolicyDocument=json.dumps(_TRUST_POLICY),
                    Description="labkit: lets the MNIST function write its logs",
                    Tags=[{"Key": MANAGED_TAG[0], "Value": MANAGED_TAG[1]}],
                )["Role"]["Arn"]
            attached = self.iam.list_attached_role_policies(RoleName=c.role_name)
            if not any(
                p["PolicyArn"] == BASIC_LOGGING_POLICY for p in attached["AttachedPolicies"]
            ):
                self.iam.attach_role_policy(RoleName=c.role_name, PolicyArn=BASIC_LOGGING_POLICY)
            return arn

    def ensure_function(self, image_uri: str, role_arn: str) -> str:
        """Create the function, or bring its code and configuration up to date; waits until
        it is Active and its last update Successful. Returns the function ARN."""
        c = self.config
        self.check_image_region(image_uri)
        settings = self._settings(role_arn)
        with aws_errors("creating or updating the Lambda function"):
            current = self._function_configuration()
            if current is None:
                self._progress(f"creating function {c.function.name}")
                arn = self._create_function(image_uri, settings)
                self._wait("function_active_v2")
            else:
                arn = current["FunctionArn"]
                code_changed, config_changed = self._function_changes(current, image_uri, settings)
                if code_changed:
                    self._progress(f"updating code of {c.function.name}")
                    self.lam.update_function_code(
                        FunctionName=c.function.name,
                        ImageUri=image_uri,
                        Architectures=[c.function.architecture],
                    )
                    self._wait("function_updated_v2")
                if config_changed:
                    self._progress(f"updating configuration of {c.function.name}")
                    self.lam.update_function_configuration(FunctionName=c.function.name, **settings)
                    self._wait("function_updated_v2")
            self._apply_concurrency()
        return arn

    def _settings(self, role_arn: str | None) -> dict[str, Any]:
        c = self.config
        settings = {
            "MemorySize": c.function.memory_mb,
            "Timeout": int(c.function.timeout_s),
            "Environment": {"Variables": dict(c.environment)},
            "Description": "labkit MNIST classifier (batched inference)",
        }
        return settings | ({"Role": role_arn} if role_arn else {})

    def _function_changes(
        self, current: dict[str, Any], image_uri: str | None, settings: dict[str, Any]
    ) -> tuple[bool, bool]:
        """(code differs, configuration differs) between the deployed function and the config."""
        code_changed = (image_uri is not None and current.get("ImageUri") != image_uri) or (
            current.get("Architectures", ["x86_64"]) != [self.config.function.architecture]
        )
        config_changed = (
            any(current.get(k) != v for k, v in settings.items() if k != "Environment")
            or current.get("Environment", {}).get("Variables", {})
            != settings["Environment"]["Variables"]
        )
        return code_changed, config_changed

    def _create_function(self, image_uri: str, settings: dict[str, Any]) -> str:
        # A new role takes a few seconds to become assumable by Lambda; retry only that.
        for attempt in range(8):
            try:
                return self.lam.create_function(
                    FunctionName=self.config.function.name, PackageType="Image",
                    Code={"ImageUri": image_uri}, Architectures=[self.config.function.architecture],
                    Tags={MANAGED_TAG[0]: MANAGED_TAG[1]}, **settings,
                )["FunctionArn"]  # fmt: skip
            except self.lam.exceptions.InvalidParameterValueException as exc:
                if "cannot be assumed" not in str(exc) or attempt == 7:
                    raise
                time.sleep(self.wait_delay_s * (attempt + 1))
        raise AssertionError("unreachable")

    def _apply_concurrency(self) -> None:
        c = self.config
        if c.reserved_concurrency is not None:
            self.lam.put_function_concurrency(
                FunctionName=c.function.name, ReservedConcurrentExecutions=c.reserved_concurrency
            )
        if c.function.provisioned:
            version = self.lam.publish_version(FunctionName=c.function.name)["Version"]
            try:
                self.lam.update_alias(
                    FunctionName=c.function.name, Name=c.alias, FunctionVersion=version
                )
            except self.lam.exceptions.ResourceNotFoundException:
                self.lam.create_alias(
                    FunctionName=c.function.name, Name=c.alias, FunctionVersion=version
                )
            self.lam.put_provisioned_concurrency_config(
                FunctionName=c.function.name, Qualifier=c.alias,
                ProvisionedConcurrentExecutions=c.function.provisioned,
            )  # fmt: skip

    def _wait(self, waiter: str) -> None:
        self.lam.get_waiter(waiter).wait(
            FunctionName=self.config.function.name,
            WaiterConfig={"Delay": self.wait_delay_s, "MaxAttempts": 150},
        )

    def deploy(self, *, local_image_tag: str | None = None) -> Deployed:
        """Run every step (idempotent) and return what is deployed.

        Uses ``config.image_uri`` when set, else pushes ``local_image_tag`` (built by
        :func:`labkit.image.build_image`).
        """
        c = self.config
        self.check_credentials()
        if c.image_uri:
            image_uri = c.image_uri
            self.check_image_region(image_uri)
        elif local_image_tag:
            image_uri = self.push_image(local_image_tag)
        else:
            raise DeployError(
                "nothing to deploy: pass local_image_tag=... or DeployConfig(image_uri=...)"
            )
        role_arn = self.ensure_role()
        arn = self.ensure_function(image_uri, role_arn)
        qualifier = c.alias if c.function.provisioned else None
        return Deployed(c.function.name, arn, image_uri, role_arn, self.region, qualifier)

    def smoke_test(self, event: Any, *, invoker: Any = None) -> Any:
        """One invocation through :class:`labkit.invoke.LambdaInvoker`; raises
        :class:`DeployError` if the function fails."""
        from labkit.invoke import LambdaInvoker

        invoker = invoker or LambdaInvoker(region=self.region, session=self.session)
        with aws_errors("smoke-testing the function"):
            result = invoker.invoke(self.config.function.name, event)
        if result.function_error:
            raise DeployError(
                f"the smoke invocation failed: {result.error_type}: {str(result.response)[:500]}"
            )
        return result

    # ----------------------------------------------------------------- teardown
    def teardown(self) -> list[str]:
        """Delete what the kit created (resources tagged ``labkit=managed``); a resource of
        the same name without the tag is left alone. Returns what was deleted."""
        c = self.config
        deleted: list[str] = []
        with aws_errors("tearing down"):
            current = self._function_configuration()
            if current and self._tagged(
                self.lam.list_tags(Resource=current["FunctionArn"])["Tags"]
            ):
                self.lam.delete_function(FunctionName=c.function.name)
                deleted.append(f"lambda-function {c.function.name}")
            if self._role_arn() and self._tagged(
                self.iam.list_role_tags(RoleName=c.role_name)["Tags"]
            ):
                for policy in self.iam.list_attached_role_policies(RoleName=c.role_name)[
                    "AttachedPolicies"
                ]:
                    self.iam.detach_role_policy(RoleName=c.role_name, PolicyArn=policy["PolicyArn"])
                self.iam.delete_role(RoleName=c.role_name)
                deleted.append(f"iam-role {c.role_name}")
            repo = self._repository()
            if repo and self._tagged(
                self.ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]
            ):
                self.ecr.delete_repository(repositoryName=c.repository, force=True)
                deleted.append(f"ecr-repository {c.repository}")
        for item in deleted:
            self._progress(f"deleted {item}")
        return deleted

    # ----------------------------------------------------------------- lookups
    @staticmethod
    def _tagged(tags: dict[str, str] | list[dict[str, str]]) -> bool:
        if isinstance(tags, list):
            tags = {
                t.get("Key", t.get("key", "")): t.get("Value", t.get("value", "")) for t in tags
            }
        return tags.get(MANAGED_TAG[0]) == MANAGED_TAG[1]

    def _repository(self) -> dict[str, Any] | None:
        try:
            return self.ecr.describe_repositories(repositoryNames=[self.config.repository])[
                "repositories"
            ][0]
        except self.ecr.exceptions.RepositoryNotFoundException:
            return None

    def _repository_uri(self) -> str | None:
        repo = self._repository()
        return repo["repositoryUri"] if repo else None

    def _role_arn(self) -> str | None:
        try:
            return self.iam.get_role(RoleName=self.config.role_name)["Role"]["Arn"]
        except self.iam.exceptions.NoSuchEntityException:
            return None

    def _function_configuration(self) -> dict[str, Any] | None:
        try:
            found = self.lam.get_function(FunctionName=self.config.function.name)
        except self.lam.exceptions.ResourceNotFoundException:
            return None
        return found["Configuration"] | {"ImageUri": found.get("Code", {}).get("ImageUri")}


@dataclass(frozen=True)
class AwsRollout:
    """What :func:`plan_and_deploy` did: the plan it showed, the function, the smoke test."""

    plan: Plan
    deployed: Deployed
    smoke: Any  # labkit.invoke.InvocationResult


def plan_and_deploy(
    config: DeployConfig,
    *,
    bundle: Any = None,
    smoke_event: Any,
    expected_invocations: int = 0,
    expected_billed_ms: float = 100.0,
    expected_cold_starts: int = 1,
    max_budget_usd: float | None = None,
    session: Any = None,
    progress: Callable[[str], None] | None = None,
) -> AwsRollout:
    """Notebook 03's AWS branch in one call: plan and cost check first, then build the image
    from ``bundle`` (unless ``config.image_uri`` names one), push, deploy and smoke-test."""
    from labkit.image import build_image

    deployment = AwsDeployment(config, session=session, progress=progress)
    plan = deployment.plan(
        expected_invocations=expected_invocations,
        expected_billed_ms=expected_billed_ms,
        expected_cold_starts=expected_cold_starts,
        max_budget_usd=max_budget_usd,
    )
    (progress or (lambda m: None))(plan.table())
    local_tag = None
    if not config.image_uri:
        if bundle is None:
            raise DeployError(
                "pass a bundle to build the image from, or DeployConfig(image_uri=...)"
            )
        local_tag = f"{config.repository}:{config.image_tag}"
        built = build_image(bundle, local_tag, platform=_PLATFORMS[config.function.architecture])
        if not built.built:
            raise DockerUnavailableError(built.message)
    deployed = deployment.deploy(local_image_tag=local_tag)
    return AwsRollout(plan, deployed, deployment.smoke_test(smoke_event))


_PLATFORMS = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}
