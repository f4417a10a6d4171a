"""The queue in front of the function on AWS: SQS queues, the event-source mapping, permissions.

:class:`AwsQueueSource` adds to a deployed function (:class:`labkit.aws.deploy.AwsDeployment`)
what :mod:`labkit.load.queue_run` needs: a request queue with a dead-letter queue (redrive after
``max_receive_count``), a response queue, the function switched to the SQS handler
(``ImageConfig.Command``) with the response queue in its environment, the role's permission
to read the one and write the other (an inline policy; with ``--role-arn`` the role is not
the kit's, and the permissions it needs are printed instead), and the mapping itself. The
request queue's visibility timeout is six times the function's timeout, as AWS advises for
event-source mappings. Everything is tagged ``labkit=managed``; :meth:`teardown` removes the
mappings, the queues and the policy.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

from labkit.aws.account import DeployError, aws_errors, redact
from labkit.aws.deploy import IAM_TRIES, MANAGED_TAG, AwsDeployment
from labkit.aws.invoke import parse_report
from labkit.settings import SQS_HANDLER, MappingSettings

#: Tries of CreateEventSourceMapping while the role's new policy propagates.
PROPAGATION_TRIES = IAM_TRIES
#: How long a queue's previous mapping may stay Deleting before the cell gives up.
MAPPING_WAIT_S = 120.0
#: How long a queue name may stay refused after its deletion (SQS: 60 s) before giving up.
QUEUE_REUSE_WAIT_S = 75.0
POLICY_NAME = "labkit-sqs"


@dataclass(frozen=True)
class QueueNames:
    requests: str = "labkit-requests"
    answers: str = "labkit-answers"
    dead_letters: str = "labkit-requests-dlq"


@dataclass(frozen=True)
class QueueSource:
    """What :meth:`AwsQueueSource.deploy` made."""

    requests_url: str
    answers_url: str
    dead_letters_url: str
    mapping_uuid: str


class AwsQueueSource:
    """SQS queues and an event-source mapping for the kit's function in one account and region."""

    def __init__(self, deployment: AwsDeployment, names: QueueNames | None = None) -> None:
        self.deployment = deployment
        self.names = names or QueueNames()
        self.sqs = deployment.session.client("sqs", region_name=deployment.region)
        self.function = deployment.config.function_name
        self.previous_image_config: dict[str, Any] = {}

    def permissions(self, requests_arn: str, answers_arn: str) -> dict[str, Any]:
        """The IAM policy the function's role needs (printed for a role the kit did not make)."""
        return {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Resource": requests_arn,
             "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]},
            {"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": answers_arn},
        ]}  # fmt: skip

    def deploy(self, mapping: MappingSettings, *, max_receive_count: int = 3) -> QueueSource:
        """Queues, permissions, the SQS handler and the mapping (an existing mapping of the
        request queue to the function is updated, not duplicated).

        The role and timeout are the deployed function's, read from Lambda, not the kit's
        defaults: a function deployed with ``--role-arn`` (an AWS Academy LabRole) gets no
        policy put on a role it does not use, and the queue's visibility timeout is six times
        the function's timeout, as AWS asks (it refuses a mapping whose function's timeout
        exceeds the queue's: https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html)."""
        lam = self.deployment.lam
        with aws_errors("reading the deployed function's role and timeout"):
            current = lam.get_function_configuration(FunctionName=self.function)
        timeout_s = int(current.get("Timeout") or self.deployment.config.function.timeout_s)
        visibility = str(6 * timeout_s)
        with aws_errors("creating the SQS queues and the event-source mapping"):
            dead_url = self._queue(self.names.dead_letters, {})
            redrive = json.dumps({"deadLetterTargetArn": self._arn(dead_url),
                                  "maxReceiveCount": str(max_receive_count)})  # fmt: skip
            requests_url = self._queue(self.names.requests,
                                       {"VisibilityTimeout": visibility, "RedrivePolicy": redrive})  # fmt: skip
            answers_url = self._queue(self.names.answers, {})
            policy = self.permissions(self._arn(requests_url), self._arn(answers_url))
            role = self._kits_role(str(current.get("Role", "")))
            if role is None:
                self.deployment._progress(
                    f"the function's role ({current.get('Role')}) is not the kit's: it needs this "
                    "policy (an AWS Academy LabRole has it):\n" + json.dumps(policy, indent=2)
                )
            else:
                self.deployment.iam.put_role_policy(RoleName=role, PolicyName=POLICY_NAME,
                                                    PolicyDocument=json.dumps(policy))  # fmt: skip
            self.previous_image_config = current.get("ImageConfigResponse", {}).get(
                "ImageConfig", {}
            )
            variables = current.get("Environment", {}).get("Variables", {})
            lam.update_function_configuration(
                FunctionName=self.function, ImageConfig={"Command": [SQS_HANDLER]},
                Environment={"Variables": variables | {"LABKIT_RESPONSE_QUEUE_URL": answers_url}})  # fmt: skip
            self.deployment._wait("function_updated_v2")
            uuid = self._mapping(self._arn(requests_url), mapping)
            self._wait_enabled(uuid)
        self.deployment._progress(f"queue {self.names.requests} feeds {self.function} "
                                  f"({mapping.label})")  # fmt: skip
        return QueueSource(requests_url, answers_url, dead_url, uuid)

    def _kits_role(self, role_arn: str) -> str | None:
        """The name of the function's role when it is the kit's own (tagged
        ``labkit=managed``), else None: the kit changes only what it made."""
        name = role_arn.rsplit("/", 1)[-1]
        if not name or self.deployment.config.role_arn:
            return None
        iam = self.deployment.iam
        try:
            tags = iam.list_role_tags(RoleName=name)["Tags"]
        except iam.exceptions.NoSuchEntityException:
            return None
        return name if self.deployment._tagged(tags) else None

    def detach(self, source: QueueSource) -> None:
        """After a cell: delete its mapping and give the function its own handler back (so a
        later cell invokes it directly; the change also retires its warm environments)."""
        lam = self.deployment.lam
        with aws_errors("detaching the queue from the function"):
            with contextlib.suppress(lam.exceptions.ResourceNotFoundException):
                lam.delete_event_source_mapping(UUID=source.mapping_uuid)
            command = (self.previous_image_config or {}).get("Command", [])
            command = [] if command == [SQS_HANDLER] else command
            lam.update_function_configuration(FunctionName=self.function,
                                              ImageConfig={"Command": command})  # fmt: skip
            self.deployment._wait("function_updated_v2")

    def report_lines(
        self,
        since_epoch_s: float,
        expected: set[str],
        *,
        timeout_s: float = 90.0,
        poll_s: float = 2.0,
    ) -> list[str]:
        """The function's REPORT lines since ``since_epoch_s`` from CloudWatch Logs, waiting
        (up to ``timeout_s``) until every invocation in ``expected`` has one: Lambda delivers
        its logs seconds after the invocation.

        Each entry is one REPORT line preceded by the init lines (``INIT_START``,
        ``INIT_REPORT``) its environment logged since its previous REPORT: a log stream is one
        execution environment, so an invocation whose REPORT lacks ``Init Duration`` after an
        init that ran over 10 s is still read as a cold start
        (:func:`labkit.aws.invoke.parse_report`)."""
        logs = self.deployment.session.client("logs", region_name=self.deployment.region)
        group = f"/aws/lambda/{self.function}"
        deadline = time.monotonic() + timeout_s
        while True:
            events = []
            with aws_errors(f"reading the function's REPORT lines from {group}"):
                pages = logs.get_paginator("filter_log_events").paginate(
                    logGroupName=group, startTime=int(since_epoch_s * 1000),
                    filterPattern=REPORT_AND_INIT_PATTERN)  # fmt: skip
                for page in pages:
                    events += page.get("events", [])
            lines = reports_with_their_init(events)
            reported = {r.request_id for r in map(parse_report, lines) if r is not None}
            if expected <= reported or time.monotonic() > deadline:
                return lines
            time.sleep(poll_s)

    def _wait_enabled(self, uuid: str, timeout_s: float = 180.0) -> None:
        """A new or updated mapping takes a while to be ``Enabled``; messages sent before
        would wait for it and count against the cell."""
        deadline = time.monotonic() + timeout_s
        while (
            state := self.deployment.lam.get_event_source_mapping(UUID=uuid).get("State")
        ) != "Enabled":
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the event-source mapping {uuid} is still {state} after {timeout_s:.0f} s"
                )
            time.sleep(self.deployment.wait_delay_s)

    def teardown(self) -> list[str]:
        """Delete the mappings from the kit's queues, the queues tagged ``labkit=managed`` and
        the inline policy; returns what was deleted."""
        deleted = []
        with aws_errors("tearing down the SQS queues"):
            arns = {}
            for url in self.sqs.list_queues(QueueNamePrefix="labkit-").get("QueueUrls", []):
                tags = self.sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
                if tags.get(MANAGED_TAG[0]) == MANAGED_TAG[1]:
                    arns[self._arn(url)] = url
            lam = self.deployment.lam
            for found in lam.list_event_source_mappings().get("EventSourceMappings", []):
                if found.get("EventSourceArn") in arns:
                    lam.delete_event_source_mapping(UUID=found["UUID"])
                    deleted.append(f"event-source-mapping {found['UUID']}")
            for url in arns.values():
                self.sqs.delete_queue(QueueUrl=url)
                deleted.append(f"sqs-queue {url.rsplit('/', 1)[1]}")
            if not self.deployment.config.role_arn:
                role = self.deployment.config.role_name
                names = self._role_policies(role)
                if POLICY_NAME in names:
                    self.deployment.iam.delete_role_policy(RoleName=role, PolicyName=POLICY_NAME)
                    deleted.append(f"iam-role-policy {POLICY_NAME}")
        return deleted

    def _role_policies(self, role: str) -> list[str]:
        try:
            return list(self.deployment.iam.list_role_policies(RoleName=role)["PolicyNames"])
        except self.deployment.iam.exceptions.NoSuchEntityException:
            return []

    def _queue(self, name: str, attributes: dict[str, str]) -> str:
        """Create (or find) the queue ``name``. SQS refuses a name deleted less than 60 s ago
        (``QueueDeletedRecently``: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html):
        right after `labkit deploy down`, the cell waits that out, saying so."""
        deadline = time.monotonic() + QUEUE_REUSE_WAIT_S
        while True:
            try:
                url = self.sqs.create_queue(QueueName=name, tags={MANAGED_TAG[0]: MANAGED_TAG[1]})[
                    "QueueUrl"
                ]
                break
            except self.sqs.exceptions.QueueDeletedRecently:
                if time.monotonic() > deadline:
                    raise
                self.deployment._progress(f"SQS keeps the name {name} for 60 s after a queue of "
                                          "that name was deleted: waiting")  # fmt: skip
                time.sleep(self.deployment.wait_delay_s * 5)
        if attributes:
            self.sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        return str(url)

    def _arn(self, url: str) -> str:
        answer = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(answer["Attributes"]["QueueArn"])

    def _mapping(self, queue_arn: str, mapping: MappingSettings) -> str:
        lam = self.deployment.lam
        settings: dict[str, Any] = {"BatchSize": mapping.batch_size,
                                    "MaximumBatchingWindowInSeconds": mapping.window_s}  # fmt: skip
        if mapping.max_concurrency:
            settings["ScalingConfig"] = {"MaximumConcurrency": mapping.max_concurrency}
        existing = self._live_mappings(queue_arn)
        if existing:
            uuid = existing[0]["UUID"]
            lam.update_event_source_mapping(UUID=uuid, **settings)
            return str(uuid)
        return self._create_mapping(queue_arn, settings)

    def _live_mappings(self, queue_arn: str) -> list[dict[str, Any]]:
        """The queue's mappings to the function, once none is ``Deleting``: a deleted mapping
        stays listed in that state for seconds and can be neither updated nor replaced
        meanwhile (https://docs.aws.amazon.com/lambda/latest/api/API_UpdateEventSourceMapping.html,
        ResourceInUseException)."""
        lam = self.deployment.lam
        deadline = time.monotonic() + MAPPING_WAIT_S
        while True:
            found = lam.list_event_source_mappings(EventSourceArn=queue_arn,
                                                   FunctionName=self.function)["EventSourceMappings"]  # fmt: skip
            if not any(m.get("State") == "Deleting" for m in found):
                return list(found)
            if time.monotonic() > deadline:
                raise DeployError(f"the queue's previous mapping was still Deleting after "
                                  f"{MAPPING_WAIT_S:g} s; run the cell again in a minute")  # fmt: skip
            self.deployment._progress("waiting for the queue's previous mapping to be deleted")
            time.sleep(self.deployment.wait_delay_s)

    def _create_mapping(self, queue_arn: str, settings: dict[str, Any]) -> str:
        """Create the mapping; while the role's new policy has not reached Lambda, Lambda
        refuses it as lacking ReceiveMessage: retried and said
        (:meth:`~labkit.aws.deploy.AwsDeployment.while_iam_spreads`), then explained."""
        lam = self.deployment.lam
        refusal = "execution role does not have permissions"
        try:
            created = self.deployment.while_iam_spreads(
                lambda: lam.create_event_source_mapping(
                    EventSourceArn=queue_arn, FunctionName=self.function, **settings
                ),
                refusal=refusal,
                say=lambda attempt: (
                    "the role's new SQS permissions have not reached Lambda yet (IAM takes "
                    f"seconds); trying again ({attempt} of {PROPAGATION_TRIES - 1} retries)"
                ),
            )
        except lam.exceptions.InvalidParameterValueException as exc:
            if refusal not in str(exc):
                raise
            raise DeployError(
                f"Lambda refused the queue's mapping {PROPAGATION_TRIES} times over about a "
                f"minute: {redact(str(exc))}. The function's role lacks "
                f"the SQS permissions of the policy {POLICY_NAME} (the kit puts it on its "
                "own role; another role needs it given, as printed above), or IAM has not "
                "spread them yet: run the cell again in a minute"
            ) from None
        return str(created["UUID"])


def teardown(deployment: AwsDeployment) -> list[str]:
    """What ``labkit deploy down`` deletes, in the order AWS allows: the queue path first
    (:meth:`AwsQueueSource.teardown`: its inline policy sits on the kit's role, which cannot be
    deleted while it holds one), then the function, role and repositories
    (:meth:`labkit.aws.deploy.AwsDeployment.teardown`). Returns what was deleted."""
    return AwsQueueSource(deployment).teardown() + deployment.teardown()


# CloudWatch Logs' filter syntax: ``?term`` matches events with any of the terms
# (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html).
REPORT_AND_INIT_PATTERN = '?"REPORT RequestId" ?"INIT_START" ?"INIT_REPORT"'


def reports_with_their_init(events: list[dict[str, Any]]) -> list[str]:
    """``FilterLogEvents`` events (any order, any streams) as one text per REPORT: the init
    lines its log stream (its execution environment) wrote since the previous REPORT, then
    the REPORT line. Lines that match none of the three are ignored."""
    pending: dict[str, list[str]] = {}
    texts = []
    ordered = sorted(events, key=lambda e: (e.get("timestamp", 0), e.get("ingestionTime", 0)))
    for event in ordered:
        message = str(event.get("message", "")).strip()
        stream = pending.setdefault(str(event.get("logStreamName", "")), [])
        if message.startswith("REPORT "):
            texts.append("\n".join([*stream, message]))
            stream.clear()
        elif message.startswith(("INIT_START", "INIT_REPORT")):
            stream.append(message)
    return texts
