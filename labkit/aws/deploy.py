"""Deploying the function to real AWS Lambda as a container image (boto3).

Every step is idempotent, so a rerun repairs instead of duplicating: build the image from
the bundle (``docker build`` with the architecture's platform and no attestations, output
streamed), ensure the ECR repository (scan on push, a lifecycle policy that expires untagged
images), push, ensure an execution role with only the basic logging policy (or use the one
``role_arn`` names, as AWS Academy accounts must), create or update the function (its code
when the image's *digest* changed, not only its tag), wait until it is Active, provision
concurrency on an alias and wait until it is READY, smoke-test it. Everything the kit
creates carries the tag ``labkit=managed``, and :meth:`AwsDeployment.teardown` deletes every
tagged resource of the region, functions included, and nothing else.

Nothing here prints credentials, tokens or the account id: what is shown to people goes
through :func:`redact`. Calls that cost money are listed first by :meth:`AwsDeployment.plan`,
with the experiment's estimated cost; ``max_budget_usd`` refuses to start above it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import WaiterError

from labkit import cost
from labkit.aws.account import (
    BudgetExceededError,
    ConcurrencyQuotaError,
    CredentialsError,
    DeployError,
    DockerUnavailableError,
    FunctionNotReadyError,
    PermissionDeniedError,
    RegionError,
    aws_errors,
    check_credentials,
    explain_state,
    redact,
    resolve_region,
)
from labkit.aws.image import build_image, docker_engine_status
from labkit.aws.invoke import LambdaInvoker
from labkit.settings import FunctionSettings

__all__ = [
    "AwsDeployment", "AwsRollout", "BudgetExceededError", "ConcurrencyQuotaError", "CredentialsError",
    "DeployConfig",
    "DeployError", "Deployed", "DockerUnavailableError", "FunctionNotReadyError",
    "PermissionDeniedError", "Plan", "PlannedChange", "RegionError", "plan_and_deploy", "redact",
]  # fmt: skip

MANAGED_TAG = ("labkit", "managed")
#: Lambda keeps this many of an account's concurrent executions unreserved, for the functions
#: without a reservation (all of them when the account's limit is lower, as a new account's 10
#: is): https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html
MIN_UNRESERVED = 100
#: Manifest media types of an image index (several manifests), which Lambda does not take.
INDEX_MEDIA_TYPES = ("application/vnd.oci.image.index.v1+json",
                     "application/vnd.docker.distribution.manifest.list.v2+json")  # fmt: skip
#: Tries of a call Lambda refuses while IAM spreads a new role or policy (about a minute
#: with the default waits).
IAM_TRIES = 8
#: Seconds between looks at a function's state while waiting for Lambda (both polls are read
#: when a wait starts: tests against AWS's doubles, which change state per look, shorten them).
STATE_POLL_S = 2.0
#: Between polls of an update to a function's configuration (AWS applies one in seconds).
UPDATE_POLL_S = 1.0
#: The event that wakes an Inactive function: answered without inference (a warm-up).
WAKE_EVENT = b'{"warmup": true}'


FRESH_VARIABLE = "LABKIT_FRESH"  # changed by the AWS backend to retire warm environments
BASIC_LOGGING_POLICY = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}  # fmt: skip
#: Untagged images (every push of a tag leaves the previous image untagged, ~1 GB each) expire.
LIFECYCLE_POLICY = {"rules": [{
    "rulePriority": 1, "description": "labkit: expire untagged images after a day",
    "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days",
                  "countNumber": 1},
    "action": {"type": "expire"},
}]}  # fmt: skip


def wait_for_function(lam: Any, name: str, waiter: str, *, delay_s: float,
                      max_attempts: int = 150) -> None:  # fmt: skip
    """Wait with Lambda's ``waiter`` (``function_active_v2``, ``function_updated_v2``); a
    function that ends ``Failed`` is explained by its reason code, where botocore says only
    "terminal failure state"."""
    try:
        lam.get_waiter(waiter).wait(
            FunctionName=name, WaiterConfig={"Delay": delay_s, "MaxAttempts": max_attempts}
        )
    except WaiterError:
        found = lam.get_function(FunctionName=name)["Configuration"]
        raise FunctionNotReadyError(explain_state(name, found)) from None


def wake_if_inactive(lam: Any, name: str, configuration: dict[str, Any], *, delay_s: float,
                     progress: Callable[[str], None]) -> bool:  # fmt: skip
    """Wake a function Lambda made ``Inactive`` (idle for weeks): it leaves that state only
    when invoked or updated; the invocation fails and the function goes ``Pending`` until it
    is ``Active`` again (https://docs.aws.amazon.com/lambda/latest/dg/functions-states.html).
    Returns whether it was asleep; a wake that ends ``Failed`` is explained."""
    if configuration.get("State") != "Inactive":
        return False
    progress(f"the function {name} is Inactive (unused for weeks): waking it, which takes as "
             "long as a first deployment")  # fmt: skip
    with contextlib.suppress(lam.exceptions.ClientError):
        lam.invoke(FunctionName=name, Payload=WAKE_EVENT)
    wait_for_function(lam, name, "function_active_v2", delay_s=delay_s, max_attempts=300)
    return True


@dataclass(frozen=True)
class DeployConfig:
    """What to deploy and how: the function (:class:`labkit.settings.FunctionSettings`, the
    settings every backend reads, so deploy and run agree on its name) and where it lives on
    AWS. ``role_arn`` uses an existing execution role (AWS Academy's ``LabRole``) instead of
    creating one; ``function.provisioned`` instances are kept ready on ``alias``."""

    function: FunctionSettings = field(default_factory=FunctionSettings)
    repository: str = "labkit-mnist"
    image_tag: str = "latest"
    image_uri: str | None = None  # an image already in ECR: skip build and push
    role_name: str = "labkit-lambda-basic-execution"
    role_arn: str | None = None  # an existing role: no IAM role is created or deleted
    region: str | None = None  # None: the AWS region chain (AWS_DEFAULT_REGION, profile)
    environment: dict[str, str] = field(default_factory=dict)
    reserved_concurrency: int | None = None
    alias: str = "live"  # provisioned concurrency needs a version or alias
    provisioned_wait_s: float = 900.0  # how long to wait for provisioned concurrency READY

    def __post_init__(self) -> None:
        if not float(self.function.timeout_s).is_integer():
            raise ValueError(
                f"AWS Lambda takes a whole number of seconds: timeout_s={self.function.timeout_s}"
            )
        if (self.reserved_concurrency or 0) < 0:
            raise ValueError("reserved_concurrency must be non-negative")
        if self.role_arn is not None and not re.fullmatch(
            r"arn:aws[\w-]*:iam::\d{12}:role/.+", self.role_arn
        ):
            raise ValueError(
                f"role_arn {self.role_arn!r} is not an IAM role ARN (arn:aws:iam::<account>:role/NAME)"
            )

    @property
    def function_name(self) -> str:
        return self.function.name

    @property
    def qualifier(self) -> str | None:
        """What invocations name to reach provisioned instances (the alias), else None."""
        return self.alias if self.function.provisioned else None


@dataclass(frozen=True)
class PlannedChange:
    """One resource the deployment would create, update or leave as it is."""

    kind: str  # "ecr-repository", "image", "iam-role", "lambda-function", ...
    name: str
    action: str  # "create", "update", "keep", "push", "build", "use"
    detail: str = ""


@dataclass(frozen=True)
class Plan:
    """What :meth:`AwsDeployment.deploy` would do, and the experiment's expected cost."""

    region: str
    changes: list[PlannedChange]
    estimate: cost.Bill | None = None
    provisioned_usd_per_hour: float = 0.0

    def table(self) -> str:
        """A readable listing, safe to print (no account ids)."""
        lines = [f"region {self.region}"]
        lines += [
            f"  {c.action:<7} {c.kind:<24} {redact(c.name)}  {c.detail}" for c in self.changes
        ]
        if self.estimate is not None:
            e = self.estimate
            lines.append(
                f"  estimated experiment cost: ${cost.format_usd(e.total_usd)} ({e.requests} invocations, "
                f"{e.gb_s:.1f} GB-s; requests ${cost.format_usd(e.request_usd)}, compute "
                f"${cost.format_usd(e.compute_usd)}, provisioned ${cost.format_usd(e.provisioned_usd)}); ECR storage "
                "~$0.10 per GB-month extra"
            )  # fmt: skip
        if self.provisioned_usd_per_hour:
            lines.append(f"  provisioned concurrency costs ${cost.format_usd(self.provisioned_usd_per_hour)} per "
                         "hour while it exists, used or not: `labkit deploy down` removes it")  # fmt: skip
        return "\n".join(lines)


@dataclass(frozen=True)
class Deployed:
    """A deployed function; ``repr`` and :meth:`summary` hide the account id."""

    function_name: str
    function_arn: str
    image_uri: str
    role_arn: str
    region: str
    qualifier: str | None = None  # the alias invocations use, when provisioned

    def summary(self) -> dict[str, str]:
        return {k: redact(str(v)) for k, v in self.__dict__.items() if v is not None}

    def __repr__(self) -> str:
        return f"Deployed({self.summary()})"


def _digest(uri: str | None) -> str | None:
    """The ``sha256:...`` digest an image reference pins, if it pins one."""
    if uri and "@sha256:" in uri:
        return "sha256:" + uri.rsplit("@sha256:", 1)[1]
    return None


class AwsDeployment:
    """Deploy, inspect and tear down the kit's function in one AWS account and region."""

    def __init__(
        self,
        config: DeployConfig | None = None,
        *,
        session: Any = None,
        progress: Callable[[str], None] | None = None,
        wait_delay_s: float | None = None,
    ) -> None:
        import boto3

        self.config = config or DeployConfig()
        self.session = session or boto3.Session(region_name=self.config.region)
        self.region = resolve_region(self.session, self.config.region)
        self._progress = progress or (lambda message: None)
        self.wait_delay_s = STATE_POLL_S if wait_delay_s is None else wait_delay_s
        self.ecr = self.session.client("ecr", region_name=self.region)
        self.iam = self.session.client("iam", region_name=self.region)
        self.lam = self.session.client("lambda", region_name=self.region)

    # ----------------------------------------------------------------- checks and plan
    def check_credentials(self) -> None:
        """Fail early, with advice, if the credentials are missing, expired or invalid."""
        check_credentials(self.session, self.region)

    def check_image_region(self, image_uri: str) -> None:
        """Lambda only runs images from ECR in its own region."""
        match = re.search(r"\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com", image_uri)
        if match and match.group(1) != self.region:
            raise RegionError(
                f"the image is in {match.group(1)} but the function would be in {self.region}; "
                f"Lambda needs the image in the same region: push it to {self.region} or deploy "
                f"with --region {match.group(1)}."
            )

    def check_manifest(self, image_uri: str) -> None:
        """Refuse an image *index* before Lambda does: Lambda takes a single-platform image
        manifest (Docker v2 schema 2 or OCI), and BuildKit with attestations, or Docker's
        containerd image store, can push an index instead
        (https://docs.aws.amazon.com/lambda/latest/dg/images-create.html). ECR says which in
        ``imageManifestMediaType``; an image ECR cannot describe is left to Lambda."""
        media = (self._ecr_image(image_uri) or {}).get("imageManifestMediaType", "")
        if media in INDEX_MEDIA_TYPES:
            raise DeployError(
                f"{redact(image_uri)} is an image index ({media}), which Lambda refuses: build "
                "a single-platform image (docker buildx build --provenance=false --sbom=false "
                "--load, as `labkit deploy up` does; or turn off Docker's containerd image "
                "store) and push it again"
            )

    def _ecr_image(self, image_uri: str) -> dict[str, Any] | None:
        """What ECR says of ``image_uri`` (a tag or a digest reference), or None when it
        cannot tell (not in ECR, or no permission to look)."""
        match = re.fullmatch(r"[^/]+\.dkr\.ecr\.[^/]+\.amazonaws\.com/([^:@]+)(?::([^@]+))?(?:@(.+))?",
                             image_uri)  # fmt: skip
        if not match or not (match.group(2) or match.group(3)):
            return None
        image = {"imageDigest": match.group(3)} if match.group(3) else {"imageTag": match.group(2)}
        try:
            found = self.ecr.describe_images(repositoryName=match.group(1), imageIds=[image])
        except Exception:  # a missing image or permission: the caller decides without ECR
            return None
        return dict((found.get("imageDetails") or [{}])[0])

    def image_digest(self, image_uri: str) -> str | None:
        """The digest ECR holds for ``image_uri`` (a tag or a digest reference), or None when
        it cannot tell (not in ECR, or no permission to look)."""
        found = _digest(image_uri) or (self._ecr_image(image_uri) or {}).get("imageDigest")
        return str(found) if found else None

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
        c, f = self.config, self.config.function
        self.check_credentials()
        changes: list[PlannedChange] = []
        with aws_errors("planning"):
            if c.image_uri:
                self.check_image_region(c.image_uri)
                changes.append(
                    PlannedChange("image", c.image_uri, "use", "an image already in ECR")
                )
            else:
                exists = self._repository_uri() is not None
                changes.append(PlannedChange("ecr-repository", c.repository, "keep" if exists else "create",
                                             "scan on push; untagged images expire after a day"))  # fmt: skip
                changes.append(PlannedChange("image", f"{c.repository}:{c.image_tag}", "build",
                                             f"docker build ({f.architecture}) + push"))  # fmt: skip
            if c.role_arn:
                changes.append(
                    PlannedChange("iam-role", c.role_arn, "use", "given with --role-arn")
                )
            else:
                changes.append(PlannedChange("iam-role", c.role_name, "keep" if self._role_arn() else "create",
                                             "basic logging policy only"))  # fmt: skip
            current = self._function()
            detail = f"{f.memory_mb} MB, {int(f.timeout_s)} s, {f.architecture}"
            if current is None:
                action = "create"
            else:
                code, configuration = self._function_changes(
                    current, c.image_uri, self._settings(self._role_arn())
                )
                action = "update" if code or configuration else "keep"
                detail += " (new image digest)" if code and c.image_uri else ""
            changes.append(PlannedChange("lambda-function", f.name, action, detail))
            if c.reserved_concurrency is not None:
                changes.append(
                    PlannedChange(
                        "reserved-concurrency", f.name, "update", str(c.reserved_concurrency)
                    )
                )
            if f.provisioned:
                changes.append(PlannedChange("provisioned-concurrency", f"{f.name}:{c.alias}", "update",
                                             f"{f.provisioned} instances (billed while set)"))  # fmt: skip
            self.check_concurrency()
        prices = self.prices()
        bill = cost.estimate(expected_invocations, expected_billed_ms, f.memory_mb,
                             cold_starts=expected_cold_starts, init_ms=expected_init_ms, prices=prices)  # fmt: skip
        per_hour = 0.0
        if f.provisioned:
            per_hour = cost.provisioned_per_hour(f.provisioned, f.memory_mb, prices)
            seconds = max(300.0, experiment_seconds)  # AWS bills provisioned time in 5-minute steps
            bill = cost.Bill(**(bill.__dict__ | {"provisioned_usd": per_hour * seconds / 3600}))
        plan = Plan(self.region, changes, bill, per_hour)
        if max_budget_usd is not None and bill.total_usd > max_budget_usd:
            raise BudgetExceededError(
                f"the experiment is expected to cost ${bill.total_usd:.4f}, above "
                f"--max-budget-usd {max_budget_usd:.4f}; lower the request count or raise the "
                "budget.\n" + plan.table()
            )
        return plan

    def prices(self) -> cost.Prices:
        known = self.region in cost.SAME_PRICE_REGIONS
        return (
            cost.prices_for(self.region, self.config.function.architecture)
            if known
            else cost.Prices()
        )

    # ----------------------------------------------------------------- steps
    def ensure_repository(self) -> str:
        """The repository's URI, creating it (tagged, scan on push) if needed; its lifecycle
        policy expires untagged images (each push of a tag leaves the old image untagged)."""
        c = self.config
        with aws_errors("ensuring the ECR repository"):
            uri = self._repository_uri()
            if uri is None:
                self._progress(f"creating ECR repository {c.repository}")
                uri = self.ecr.create_repository(
                    repositoryName=c.repository, imageScanningConfiguration={"scanOnPush": True},
                    tags=[{"Key": MANAGED_TAG[0], "Value": MANAGED_TAG[1]}],
                )["repository"]["repositoryUri"]  # fmt: skip
            self.ecr.put_lifecycle_policy(repositoryName=c.repository,
                                          lifecyclePolicyText=json.dumps(LIFECYCLE_POLICY))  # fmt: skip
            return str(uri)

    def push_image(self, local_tag: str, *, docker: str = "docker") -> str:
        """Tag the local image ``local_tag`` into the repository and push it; returns the URI.

        The ECR token goes to ``docker login`` on stdin, never to a command line or output.
        """

        reachable, why = docker_engine_status(docker)
        if not reachable:
            raise DockerUnavailableError(
                f"pushing the image needs a Docker engine, but {why}. Start Docker (or build "
                "and push on a machine that has it) and pass --image-uri."
            )
        repository_uri = self.ensure_repository()
        target = f"{repository_uri}:{self.config.image_tag}"
        with aws_errors("getting an ECR login token"):
            auth = self.ecr.get_authorization_token()["authorizationData"][0]
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
        """The execution role's ARN: the one ``role_arn`` names (never created, never
        deleted), else the kit's own, created with only the basic logging policy."""
        c = self.config
        if c.role_arn:
            return c.role_arn
        with aws_errors("ensuring the IAM execution role (accounts that cannot create roles: "
                        "pass --role-arn, e.g. AWS Academy's LabRole)"):  # fmt: skip
            arn = self._role_arn()
            if arn is None:
                self._progress(f"creating IAM role {c.role_name}")
                arn = self.iam.create_role(
                    RoleName=c.role_name, AssumeRolePolicyDocument=json.dumps(_TRUST_POLICY),
                    Description="labkit: lets the MNIST function write its logs",
                    Tags=[{"Key": MANAGED_TAG[0], "Value": MANAGED_TAG[1]}],
                )["Role"]["Arn"]  # fmt: skip
            attached = self.iam.list_attached_role_policies(RoleName=c.role_name)[
                "AttachedPolicies"
            ]
            if not any(p["PolicyArn"] == BASIC_LOGGING_POLICY for p in attached):
                self.iam.attach_role_policy(RoleName=c.role_name, PolicyArn=BASIC_LOGGING_POLICY)
            return str(arn)

    def ensure_function(self, image_uri: str, role_arn: str) -> str:
        """Create the function, or bring its code and configuration up to date; waits until
        it is Active and its last update Successful. Returns the function ARN."""
        f = self.config.function
        self.check_image_region(image_uri)
        settings = self._settings(role_arn)
        with aws_errors("creating or updating the Lambda function"):
            current = self._function()
            if current is None:
                self._progress(f"creating function {f.name}")
                arn = self._create_function(image_uri, settings)
                self._wait("function_active_v2")
            else:
                arn = current["FunctionArn"]
                wake_if_inactive(self.lam, f.name, current, delay_s=self.wait_delay_s,
                                 progress=self._progress)  # fmt: skip
                code_changed, config_changed = self._function_changes(current, image_uri, settings)
                if code_changed:
                    self._progress(f"updating code of {f.name} (the image or its digest changed)")
                    self.lam.update_function_code(FunctionName=f.name, ImageUri=image_uri,
                                                  Architectures=[f.architecture])  # fmt: skip
                    self._wait("function_updated_v2")
                if config_changed:
                    self._progress(f"updating configuration of {f.name}")
                    self.lam.update_function_configuration(FunctionName=f.name, **settings)
                    self._wait("function_updated_v2")
            self._apply_concurrency()
        return str(arn)

    def _settings(self, role_arn: str | None) -> dict[str, Any]:
        c, f = self.config, self.config.function
        settings = {
            "MemorySize": f.memory_mb,
            "Timeout": int(f.timeout_s),
            "Environment": {"Variables": dict(c.environment)},
            "Description": "labkit MNIST classifier (batched inference)",
        }
        return settings | ({"Role": role_arn} if role_arn else {})

    def _function_changes(
        self, current: dict[str, Any], image_uri: str | None, settings: dict[str, Any]
    ) -> tuple[bool, bool]:
        """(code differs, configuration differs): the code differs when the image reference
        or the digest it resolves to does (a rebuilt ``:latest`` is new code), or the
        architecture does."""
        code_changed = current.get("Architectures", ["x86_64"]) != [
            self.config.function.architecture
        ]
        if image_uri is not None:
            code_changed |= current.get("ImageUri") != image_uri
            wanted, deployed = (
                self.image_digest(image_uri),
                _digest(current.get("ResolvedImageUri")),
            )
            code_changed |= wanted is not None and deployed is not None and wanted != deployed
        variables = dict(current.get("Environment", {}).get("Variables", {}))
        variables.pop(FRESH_VARIABLE, None)  # what the AWS backend sets to start fresh cells
        config_changed = (
            any(current.get(k) != v for k, v in settings.items() if k != "Environment")
            or variables != settings["Environment"]["Variables"]
        )  # fmt: skip
        return code_changed, config_changed

    def _create_function(self, image_uri: str, settings: dict[str, Any]) -> str:
        f = self.config.function
        created = self.while_iam_spreads(lambda: self.lam.create_function(
            FunctionName=f.name, PackageType="Image", Code={"ImageUri": image_uri},
            Architectures=[f.architecture], Tags={MANAGED_TAG[0]: MANAGED_TAG[1]}, **settings,
        ), refusal="cannot be assumed")  # fmt: skip
        return str(created["FunctionArn"])

    def while_iam_spreads(self, call: Callable[[], Any], *, refusal: str,
                          say: Callable[[int], str] | None = None) -> Any:  # fmt: skip
        """``call()``, again while Lambda refuses it with ``refusal``: IAM is eventually
        consistent, so a role or policy made seconds ago may not be usable yet
        (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency).
        Waits grow by ``wait_delay_s`` (1, 2, ... 7 times it), ``say(attempt)`` is told each
        retry; after :data:`IAM_TRIES` the refusal propagates."""
        for attempt in range(1, IAM_TRIES + 1):
            try:
                return call()
            except self.lam.exceptions.InvalidParameterValueException as exc:
                if refusal not in str(exc) or attempt == IAM_TRIES:
                    raise
                if say is not None:
                    self._progress(say(attempt))
                time.sleep(self.wait_delay_s * attempt)
        raise AssertionError("unreachable")

    def check_concurrency(self) -> None:
        """Refuse, before anything is created, reserved or provisioned concurrency the account
        cannot give (:class:`ConcurrencyQuotaError` with the account's numbers): AWS refuses
        a reservation that leaves fewer than :data:`MIN_UNRESERVED` executions unreserved, and
        provisioned instances come out of the function's reservation, else out of the
        unreserved pool (https://docs.aws.amazon.com/lambda/latest/dg/provisioned-concurrency.html)."""
        c, f = self.config, self.config.function
        if c.reserved_concurrency is None and not f.provisioned:
            return
        limits = self.lam.get_account_settings()["AccountLimit"]
        total, unreserved = (
            int(limits["ConcurrentExecutions"]),
            int(limits["UnreservedConcurrentExecutions"]),
        )
        minimum = min(MIN_UNRESERVED, total)
        own = 0
        if self._function() is not None:
            found = self.lam.get_function_concurrency(FunctionName=f.name)
            own = int(found.get("ReservedConcurrentExecutions") or 0)
        can_reserve = max(0, unreserved + own - minimum)
        if c.reserved_concurrency is not None:
            asked, room = f"--reserved-concurrency {c.reserved_concurrency}", can_reserve
            if c.reserved_concurrency > room:
                raise ConcurrencyQuotaError(
                    self._quota_message(asked, total, unreserved, minimum, room)
                )
            asked, room = f"--provisioned {f.provisioned}", c.reserved_concurrency
        else:
            asked, room = f"--provisioned {f.provisioned}", own or can_reserve
        if f.provisioned > room:
            raise ConcurrencyQuotaError(
                self._quota_message(asked, total, unreserved, minimum, room)
            )

    def _quota_message(
        self, asked: str, total: int, unreserved: int, minimum: int, room: int
    ) -> str:
        return (f"AWS would refuse {asked}: this account has {total} concurrent executions in "
                f"{self.region}, {unreserved} of them unreserved, and Lambda keeps {minimum} "
                f"unreserved for functions without a reservation, so this function can have at "
                f"most {room} here. Nothing was created. Leave {asked.split()[0]} out, or ask AWS "
                "for a higher quota (Service Quotas > AWS Lambda > Concurrent executions; a new "
                "account starts at 10).")  # fmt: skip

    def _apply_concurrency(self) -> None:
        c, f = self.config, self.config.function
        if c.reserved_concurrency is not None:
            try:
                self.lam.put_function_concurrency(FunctionName=f.name,
                                                  ReservedConcurrentExecutions=c.reserved_concurrency)  # fmt: skip
            except self.lam.exceptions.InvalidParameterValueException as exc:
                raise ConcurrencyQuotaError(
                    f"AWS refused --reserved-concurrency {c.reserved_concurrency}: {redact(str(exc))}. "
                    f"Lambda keeps {MIN_UNRESERVED} executions unreserved (all of them on an account "
                    "whose limit is lower; a new account's is 10): lower --reserved-concurrency (or "
                    "leave it out), or ask AWS for a higher quota (Service Quotas, 'Concurrent "
                    "executions')."
                ) from None
        if f.provisioned:
            version = self.lam.publish_version(FunctionName=f.name)["Version"]
            try:
                self.lam.update_alias(FunctionName=f.name, Name=c.alias, FunctionVersion=version)
            except self.lam.exceptions.ResourceNotFoundException:
                self.lam.create_alias(FunctionName=f.name, Name=c.alias, FunctionVersion=version)
            self.lam.put_provisioned_concurrency_config(
                FunctionName=f.name, Qualifier=c.alias, ProvisionedConcurrentExecutions=f.provisioned,
            )  # fmt: skip
            self.wait_provisioned()

    def wait_provisioned(self) -> None:
        """Block until the alias's provisioned concurrency is READY (minutes on AWS), saying
        how far it got; :class:`FunctionNotReadyError` when it FAILED or did not get there."""
        c, f = self.config, self.config.function
        deadline = time.monotonic() + c.provisioned_wait_s
        while True:
            found = self.lam.get_provisioned_concurrency_config(
                FunctionName=f.name, Qualifier=c.alias
            )
            status = found.get("Status")
            self._progress(f"provisioned concurrency {f.name}:{c.alias}: {status} "
                           f"({found.get('AvailableProvisionedConcurrentExecutions', 0)} of "
                           f"{found.get('RequestedProvisionedConcurrentExecutions', f.provisioned)} ready)")  # fmt: skip
            if status == "READY":
                return
            if status == "FAILED":
                raise FunctionNotReadyError(
                    f"provisioned concurrency of {f.name}:{c.alias} failed: {found.get('StatusReason', '')}"
                )
            if time.monotonic() > deadline:
                raise FunctionNotReadyError(
                    f"provisioned concurrency of {f.name}:{c.alias} not READY after "
                    f"{c.provisioned_wait_s:g} s (status {status}); run `labkit deploy up` again later"
                )
            time.sleep(self.wait_delay_s)

    def _wait(self, waiter: str) -> None:
        wait_for_function(self.lam, self.config.function.name, waiter, delay_s=self.wait_delay_s)

    def deploy(self, *, local_image_tag: str | None = None) -> Deployed:
        """Run every step (idempotent) and return what is deployed.

        Uses ``config.image_uri`` when set, else pushes ``local_image_tag`` (built by
        :func:`labkit.aws.image.build_image`).
        """
        c = self.config
        self.check_credentials()
        with aws_errors("checking the account's concurrency"):
            self.check_concurrency()
        if c.image_uri:
            image_uri = c.image_uri
            self.check_image_region(image_uri)
        elif local_image_tag:
            image_uri = self.push_image(local_image_tag)
        else:
            raise DeployError(
                "nothing to deploy: build the image (`labkit deploy up` does) or pass --image-uri"
            )
        self.check_manifest(image_uri)
        role_arn = self.ensure_role()
        arn = self.ensure_function(image_uri, role_arn)
        return Deployed(c.function.name, arn, image_uri, role_arn, self.region, c.qualifier)

    def smoke_test(self, event: Any, *, invoker: Any = None) -> Any:
        """One invocation through :class:`labkit.aws.invoke.LambdaInvoker` (on the alias when
        provisioned); raises :class:`DeployError` if the function fails."""

        invoker = invoker or LambdaInvoker(region=self.region, session=self.session)
        with aws_errors("smoke-testing the function"):
            result = invoker.invoke(
                self.config.function.name, event, qualifier=self.config.qualifier
            )
        if result.function_error:
            raise DeployError(
                f"the smoke invocation failed: {result.error_type}: {str(result.response)[:500]}"
            )
        return result

    # ----------------------------------------------------------------- teardown
    def teardown(self) -> list[str]:
        """Delete the function, role and repositories of the region the kit created (tagged
        ``labkit=managed``; a function's aliases, versions and provisioned concurrency go with
        it). A resource without the tag, such as a role passed with ``--role-arn`` or one of
        the same name, is left alone. Returns what was deleted. The queue path goes first, by
        :func:`labkit.aws.queue_source.teardown` (what ``labkit deploy down`` calls), which
        builds on this class."""
        deleted: list[str] = []
        with aws_errors("tearing down"):
            logs = self.session.client("logs", region_name=self.region)
            for function in self._tagged_functions():
                self.lam.delete_function(FunctionName=function)
                deleted.append(f"lambda-function {function}")
                # Lambda's log group outlives the function and keeps its logs forever unless
                # deleted (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs.html)
                with contextlib.suppress(logs.exceptions.ResourceNotFoundException):
                    logs.delete_log_group(logGroupName=f"/aws/lambda/{function}")
                    deleted.append(f"log-group /aws/lambda/{function}")
            role = self.config.role_name
            if (
                not self.config.role_arn
                and self._role_arn()
                and self._tagged(self.iam.list_role_tags(RoleName=role)["Tags"])
            ):
                for policy in self.iam.list_attached_role_policies(RoleName=role)[
                    "AttachedPolicies"
                ]:
                    self.iam.detach_role_policy(RoleName=role, PolicyArn=policy["PolicyArn"])
                self.iam.delete_role(RoleName=role)
                deleted.append(f"iam-role {role}")
            for repository in self.ecr.describe_repositories().get("repositories", []):
                tags = self.ecr.list_tags_for_resource(resourceArn=repository["repositoryArn"])[
                    "tags"
                ]
                if self._tagged(tags):
                    self.ecr.delete_repository(
                        repositoryName=repository["repositoryName"], force=True
                    )
                    deleted.append(f"ecr-repository {repository['repositoryName']}")
        for item in deleted:
            self._progress(f"deleted {item}")
        return deleted

    def _tagged_functions(self) -> list[str]:
        names = []
        for page in self.lam.get_paginator("list_functions").paginate():
            for function in page["Functions"]:
                if self._tagged(
                    self.lam.list_tags(Resource=function["FunctionArn"]).get("Tags", {})
                ):
                    names.append(function["FunctionName"])
        return names

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
            return dict(
                self.ecr.describe_repositories(repositoryNames=[self.config.repository])[
                    "repositories"
                ][0]
            )
        except self.ecr.exceptions.RepositoryNotFoundException:
            return None

    def _repository_uri(self) -> str | None:
        repo = self._repository()
        return repo["repositoryUri"] if repo else None

    def _role_arn(self) -> str | None:
        if self.config.role_arn:
            return self.config.role_arn
        try:
            return str(self.iam.get_role(RoleName=self.config.role_name)["Role"]["Arn"])
        except self.iam.exceptions.NoSuchEntityException:
            return None

    def _function(self) -> dict[str, Any] | None:
        try:
            found = self.lam.get_function(FunctionName=self.config.function.name)
        except self.lam.exceptions.ResourceNotFoundException:
            return None
        code = found.get("Code", {})
        return dict(found["Configuration"]) | {"ImageUri": code.get("ImageUri"),
                                               "ResolvedImageUri": code.get("ResolvedImageUri")}  # fmt: skip


@dataclass(frozen=True)
class AwsRollout:
    """What :func:`plan_and_deploy` did: the plan it showed, the function, the smoke test."""

    plan: Plan
    deployed: Deployed
    smoke: Any  # labkit.aws.invoke.InvocationResult


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
    """``labkit deploy up`` and notebook 03's AWS step in one call: plan and cost check
    first, then build the image from ``bundle`` for the function's architecture (unless
    ``config.image_uri`` names one; Docker's output goes to ``progress`` as it comes), push,
    deploy and smoke-test."""

    say = progress or (lambda message: None)
    deployment = AwsDeployment(config, session=session, progress=progress)
    plan = deployment.plan(expected_invocations=expected_invocations, expected_billed_ms=expected_billed_ms,
                           expected_cold_starts=expected_cold_starts, max_budget_usd=max_budget_usd)  # fmt: skip
    say(plan.table())
    local_tag = None
    if not config.image_uri:
        if bundle is None:
            raise DeployError("pass a bundle to build the image from, or --image-uri")
        local_tag = f"{config.repository}:{config.image_tag}"
        say(f"building {local_tag} for {config.function.architecture} (PyTorch: several minutes)")
        built = build_image(
            bundle, local_tag, architecture=config.function.architecture, progress=say
        )
        if not built.built:
            raise DockerUnavailableError(
                built.message + " Pass --image-uri to deploy an image built elsewhere."
            )
    deployed = deployment.deploy(local_image_tag=local_tag)
    return AwsRollout(plan, deployed, deployment.smoke_test(smoke_event))
