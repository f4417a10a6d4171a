"""AWS's documented answers that moto does not give, injected into every boto3 client.

moto plays Lambda, IAM, ECR and SQS without AWS's states, account limits or refusals, so code
that mishandles them passes against moto alone. :class:`AwsAnswers` puts them back: it hooks
each boto3 client created while it is installed (``Session.client``) with botocore's event
handlers, which answer a call in AWS's place (``before-call``: the handler's response is used
and the request never reaches moto) or amend moto's answer (``after-call``: the parsed
response is changed in place). What it does not play goes to moto unchanged.

Each behaviour names the AWS page that documents it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

#: https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html ("You can
#: reserve up to the Unreserved account concurrency value minus 100"); an account whose limit
#: is 100 or less (a new account's is 10: https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html)
#: keeps all of it unreserved. The refusal's words are Lambda's InvalidParameterValueException.
MIN_UNRESERVED = 100
UNRESERVED_REFUSAL = (
    "Specified {what} for function decreases account's UnreservedConcurrentExecution below its "
    "minimum value of [{minimum}]."
)


@dataclass
class Account:
    """One account's Lambda concurrency in a region (GetAccountSettings' AccountLimit)."""

    concurrent_executions: int = 1000
    reserved: dict[str, int] = field(default_factory=dict)  # function -> reserved concurrency
    provisioned: dict[str, int] = field(default_factory=dict)  # function -> provisioned

    @property
    def minimum_unreserved(self) -> int:
        return min(MIN_UNRESERVED, self.concurrent_executions)

    @property
    def unreserved(self) -> int:
        return self.concurrent_executions - sum(self.reserved.values())


@dataclass
class FunctionState:
    """A function's state as GetFunction reports it.

    https://docs.aws.amazon.com/lambda/latest/dg/functions-states.html: ``Pending``,
    ``Active``, ``Inactive`` (idle for weeks; invoked or updated, it goes ``Pending`` then
    ``Active``), ``Failed`` with ``StateReasonCode`` and ``StateReason``."""

    state: str
    reason_code: str | None = None
    reason: str | None = None
    update_failed: bool = False  # LastUpdateStatus Failed, with the same code and reason
    pending_polls: int = 0  # GetFunction calls a waking function stays Pending


def _answer(status: int, parsed: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    parsed.setdefault("ResponseMetadata", {"HTTPStatusCode": status, "HTTPHeaders": {}})
    return AWSResponse("https://lambda.amazonaws.com", status, {}, None), parsed  # type: ignore[arg-type]


def _function_name(context: dict[str, Any]) -> str:
    """The function a Lambda call names (an ARN or ``name:qualifier`` reduced to the name)."""
    return str(context.get("labkit_params", {}).get("FunctionName", "")).split(":")[-1]


def _refusal(code: str, message: str, status: int = 400) -> tuple[AWSResponse, dict[str, Any]]:
    return _answer(status, {"Error": {"Code": code, "Message": message}, "message": message})


class AwsAnswers:
    """The answers, per account; install with :func:`aws_answers` (a context manager)."""

    def __init__(self, account: Account | None = None) -> None:
        self.account = account or Account()
        self.states: dict[str, FunctionState] = {}
        self.refused: list[str] = []  # operations answered with a refusal
        self.propagation_calls = 0  # CreateEventSourceMapping refusals after a PutRolePolicy
        self._unpropagated = 0
        self.deleting_lists = 0  # ListEventSourceMappings that still show a deleted mapping
        self.expired: set[str] = set()  # access keys whose session token has expired
        self.queue_reuse_refusals = 0  # CreateQueue refusals of a name deleted just before
        self.state_polls = (
            0  # GetFunction answers a new function stays Pending, an update InProgress
        )
        self.role_refusals = 0  # CreateFunction refusals right after a new role
        self._unassumable = 0
        self.creating_polls = 0  # GetEventSourceMapping answers a new mapping stays Creating
        self._creating: dict[str, int] = {}
        self._updating: dict[str, int] = {}  # function -> GetFunction answers still InProgress
        self._deleted_queues: dict[str, int] = {}  # name -> refusals left
        self._deleting: dict[str, tuple[dict[str, Any], int]] = {}  # uuid -> (mapping, lists left)

    # ---- what a test sets
    def new_account(self, concurrent_executions: int = 10) -> None:
        """A new account: 10 concurrent executions in all, none to reserve or provision."""
        self.account.concurrent_executions = concurrent_executions

    def fail(self, function: str, reason_code: str, reason: str, *, update: bool = False
             ) -> None:  # fmt: skip
        """The function goes ``Failed`` (``update``: its last update failed, the function
        stays ``Active``), with AWS's reason code and reason."""
        state = "Active" if update else "Failed"
        self.states[function] = FunctionState(state, reason_code, reason, update_failed=update)

    def sleep(self, function: str) -> None:
        """The function went ``Inactive`` (unused for weeks)."""
        self.states[function] = FunctionState(
            "Inactive", "Idle", "The function has been inactive for an extended period."
        )

    # ---- the hooks
    def hook(self, client: Any) -> None:
        service = client.meta.service_model.service_name
        events = client.meta.events
        events.register(f"before-call.{client.meta.service_model.service_id.hyphenize()}",
                        self._credentials)  # fmt: skip
        if service == "iam":
            events.register("after-call.iam.PutRolePolicy", self._policy_put)
            events.register("after-call.iam.CreateRole", self._role_created)
        if service == "sqs":
            events.register("before-parameter-build.sqs.*", self._keep_params)
            events.register("after-call.sqs.DeleteQueue", self._queue_deleted)
            events.register("before-call.sqs.CreateQueue", self._create_queue)
        if service != "lambda":
            return
        events.register("before-parameter-build.lambda.*", self._keep_params)
        events.register("before-call.lambda.CreateEventSourceMapping", self._create_mapping)
        events.register("after-call.lambda.DeleteEventSourceMapping", self._mapping_deleted)
        events.register("after-call.lambda.ListEventSourceMappings", self._list_mappings)
        events.register("before-call.lambda.UpdateEventSourceMapping", self._update_mapping)
        events.register("before-call.lambda.Invoke", self._invoke)
        events.register("before-call.lambda.GetProvisionedConcurrencyConfig", self._provisioned)
        events.register("before-call.lambda.CreateFunction", self._create_function)
        events.register("after-call.lambda.CreateFunction", self._function_created)
        events.register("after-call.lambda.CreateEventSourceMapping", self._mapping_created)
        events.register("after-call.lambda.GetEventSourceMapping", self._mapping_state)
        for operation in ("UpdateFunctionConfiguration", "UpdateFunctionCode"):
            events.register(f"after-call.lambda.{operation}", self._updated)
        for operation in ("UpdateFunctionConfiguration", "UpdateFunctionCode"):
            events.register(f"before-call.lambda.{operation}", self._update)
        events.register("before-call.lambda.GetAccountSettings", self._account_settings)
        events.register("before-call.lambda.PutFunctionConcurrency", self._reserve)
        events.register("before-call.lambda.PutProvisionedConcurrencyConfig", self._provision)
        for operation in ("GetFunction", "GetFunctionConfiguration"):
            events.register(f"after-call.lambda.{operation}", self._state)

    @staticmethod
    def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["labkit_params"] = dict(params)

    def _account_settings(self, **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        a = self.account
        return _answer(200, {
            "AccountLimit": {"TotalCodeSize": 80_530_636_800, "CodeSizeUnzipped": 262_144_000,
                             "CodeSizeZipped": 52_428_800,
                             "ConcurrentExecutions": a.concurrent_executions,
                             "UnreservedConcurrentExecutions": a.unreserved},
            "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": 0},
        })  # fmt: skip

    def _reserve(self, context: dict[str, Any], **_: Any) -> Any:
        params = context.get("labkit_params", {})
        name, wanted = params["FunctionName"], int(params["ReservedConcurrentExecutions"])
        a = self.account
        if a.unreserved + a.reserved.get(name, 0) - wanted < a.minimum_unreserved:
            self.refused.append("PutFunctionConcurrency")
            return _refusal("InvalidParameterValueException", UNRESERVED_REFUSAL.format(
                what="ReservedConcurrentExecutions", minimum=a.minimum_unreserved))  # fmt: skip
        a.reserved[name] = wanted
        return None  # moto records it too

    def _provision(self, context: dict[str, Any], **_: Any) -> Any:
        params = context.get("labkit_params", {})
        name, wanted = params["FunctionName"], int(params["ProvisionedConcurrentExecutions"])
        a = self.account
        # Provisioned concurrency comes out of the function's reserved concurrency when it has
        # some, else out of the unreserved pool, which keeps its minimum
        # (https://docs.aws.amazon.com/lambda/latest/dg/provisioned-concurrency.html).
        room = (a.reserved[name] if name in a.reserved
                else a.unreserved - a.minimum_unreserved)  # fmt: skip
        if wanted > room:
            self.refused.append("PutProvisionedConcurrencyConfig")
            return _refusal("InvalidParameterValueException", UNRESERVED_REFUSAL.format(
                what="ConcurrentExecutions", minimum=a.minimum_unreserved))  # fmt: skip
        a.provisioned[name] = wanted
        return None

    # https://docs.aws.amazon.com/lambda/latest/api/API_GetProvisionedConcurrencyConfig.html:
    # READY once allocated; ProvisionedConcurrencyConfigNotFoundException where none is set.
    def _provisioned(self, context: dict[str, Any], **_: Any) -> Any:
        name = _function_name(context)
        wanted = self.account.provisioned.get(name)
        if wanted is None:
            return _refusal("ProvisionedConcurrencyConfigNotFoundException",
                            "No Provisioned Concurrency Config found for this function", 404)  # fmt: skip
        return _answer(200, {"RequestedProvisionedConcurrentExecutions": wanted,
                             "AvailableProvisionedConcurrentExecutions": wanted,
                             "AllocatedProvisionedConcurrentExecutions": wanted,
                             "Status": "READY"})  # fmt: skip

    # SQS keeps a deleted queue's name for 60 s: CreateQueue of it is refused meanwhile
    # (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html).
    def _queue_deleted(self, context: dict[str, Any], **_: Any) -> None:
        url = str(context.get("labkit_params", {}).get("QueueUrl", ""))
        if self.queue_reuse_refusals:
            self._deleted_queues[url.rsplit("/", 1)[-1]] = self.queue_reuse_refusals

    def _create_queue(self, context: dict[str, Any], **_: Any) -> Any:
        name = context.get("labkit_params", {}).get("QueueName", "")
        if self._deleted_queues.get(name, 0) > 0:
            self._deleted_queues[name] -= 1
            self.refused.append("CreateQueue")
            return _refusal("QueueDeletedRecently", "You must wait 60 seconds after deleting a "
                            "queue before you can create another with the same name.")  # fmt: skip
        return None

    # IAM is eventually consistent: a new role policy takes seconds to reach Lambda, which
    # checks the role when a mapping is created
    # (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency).
    def _policy_put(self, **_: Any) -> None:
        self._unpropagated = self.propagation_calls

    def _owed(self, counter: str, operation: str) -> bool:
        """Whether a refusal counted by ``counter`` is still owed; spends it and records the
        refused ``operation``."""
        if getattr(self, counter) <= 0:
            return False
        setattr(self, counter, getattr(self, counter) - 1)
        self.refused.append(operation)
        return True

    def _create_mapping(self, **_: Any) -> Any:
        if self._owed("_unpropagated", "CreateEventSourceMapping"):
            return _refusal("InvalidParameterValueException", "The provided execution role does "
                            "not have permissions to call ReceiveMessage on SQS")  # fmt: skip
        return None

    # DeleteEventSourceMapping answers with the mapping in state Deleting, which it keeps for
    # seconds; meanwhile it cannot be updated
    # (https://docs.aws.amazon.com/lambda/latest/api/API_DeleteEventSourceMapping.html,
    # https://docs.aws.amazon.com/lambda/latest/api/API_UpdateEventSourceMapping.html).
    def _mapping_deleted(self, parsed: dict[str, Any], **_: Any) -> None:
        if "UUID" in parsed and self.deleting_lists:
            parsed["State"] = "Deleting"
            self._deleting[parsed["UUID"]] = (dict(parsed), self.deleting_lists)

    def _list_mappings(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        source = context.get("labkit_params", {}).get("EventSourceArn")
        for uuid, (mapping, left) in list(self._deleting.items()):
            if left <= 0:
                del self._deleting[uuid]
                continue
            self._deleting[uuid] = (mapping, left - 1)
            if source in (None, mapping.get("EventSourceArn")):
                parsed.setdefault("EventSourceMappings", []).append(dict(mapping))

    def _update_mapping(self, context: dict[str, Any], **_: Any) -> Any:
        if context.get("labkit_params", {}).get("UUID") in self._deleting:
            self.refused.append("UpdateEventSourceMapping")
            return _refusal("ResourceInUseException", "Cannot update the event source mapping "
                            "because it is in use.", status=400)  # fmt: skip
        return None

    # Temporary credentials expire (AWS Academy's after about four hours); every call signed
    # with them is refused until the caller signs with new ones
    # (https://docs.aws.amazon.com/STS/latest/APIReference/CommonErrors.html: ExpiredToken).
    def _credentials(self, request_signer: Any = None, **_: Any) -> Any:
        credentials = getattr(request_signer, "_credentials", None)
        if credentials is not None and credentials.access_key in self.expired:
            return _refusal("ExpiredTokenException",
                            "The security token included in the request is expired", 403)  # fmt: skip
        return None

    # An Inactive function leaves that state only when invoked or updated: the invocation
    # fails and the function is Pending until it is Active again
    # (https://docs.aws.amazon.com/lambda/latest/dg/functions-states.html; the page quotes
    # no error message, so the one below is the fake's).
    def _invoke(self, context: dict[str, Any], **_: Any) -> Any:
        name = _function_name(context)
        if name in self.states and self.states[name].state == "Pending":
            return _refusal("ResourceConflictException", "The operation cannot be performed at "
                            "this time. The function is currently in the following state: "
                            "Pending", 409)  # fmt: skip
        if self._wake(context) is not None:
            return _refusal("ResourceNotReadyException",
                            "The function is inactive and is being restored.", 502)  # fmt: skip
        return None

    def _update(self, context: dict[str, Any], **_: Any) -> Any:
        name = _function_name(context)
        if self._updating.get(name, 0) > 0:
            self.refused.append("UpdateFunction")
            return _refusal("ResourceConflictException", "The operation cannot be performed at "
                            f"this time. An update is in progress for resource: {name}", 409)  # fmt: skip
        self._wake(context)  # the update itself goes on to moto
        return None

    # A new function is Pending, an updated one's LastUpdateStatus InProgress, until Lambda
    # is done; a second update meanwhile is refused (ResourceConflictException): the waiters
    # function_active_v2 / function_updated_v2 exist for this
    # (https://docs.aws.amazon.com/lambda/latest/dg/functions-states.html).
    def _function_created(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        name = str(context.get("labkit_params", {}).get("FunctionName", ""))
        if self.state_polls and "Error" not in parsed:
            parsed["State"] = "Pending"
            self.states[name] = FunctionState("Pending", "Creating", "The function is being "
                                              "created.", pending_polls=self.state_polls)  # fmt: skip

    def _updated(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        name = _function_name(context)
        if self.state_polls and "Error" not in parsed:
            parsed["LastUpdateStatus"] = "InProgress"
            self._updating[name] = self.state_polls

    # A role is usable by Lambda seconds after it is made: CreateFunction says it "cannot be
    # assumed by Lambda" meanwhile (IAM's eventual consistency, as above).
    def _role_created(self, **_: Any) -> None:
        self._unassumable = self.role_refusals

    def _create_function(self, **_: Any) -> Any:
        if self._owed("_unassumable", "CreateFunction"):
            return _refusal("InvalidParameterValueException",
                            "The role defined for the function cannot be assumed by Lambda.")  # fmt: skip
        return None

    # A new mapping is Creating, then Enabled
    # (https://docs.aws.amazon.com/lambda/latest/api/API_CreateEventSourceMapping.html: State).
    def _mapping_created(self, parsed: dict[str, Any], **_: Any) -> None:
        if self.creating_polls and "UUID" in parsed:
            parsed["State"] = "Creating"
            self._creating[parsed["UUID"]] = self.creating_polls

    def _mapping_state(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        uuid = context.get("labkit_params", {}).get("UUID")
        if self._creating.get(uuid, 0) > 0:
            self._creating[uuid] -= 1
            parsed["State"] = "Creating"

    def _wake(self, context: dict[str, Any]) -> FunctionState | None:
        name = _function_name(context)
        found = self.states.get(name)
        if found is not None and found.state == "Inactive":
            self.states[name] = FunctionState("Pending", "Restoring", "Restoring the function.",
                                              pending_polls=2)  # fmt: skip
            return found
        return None

    def _state(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        name = _function_name(context)
        if self._updating.get(name, 0) > 0 and "Error" not in parsed:
            self._updating[name] -= 1
            parsed.get("Configuration", parsed)["LastUpdateStatus"] = "InProgress"
        found = self.states.get(name)
        if found is None or "Error" in parsed:
            return
        if found.state == "Pending":
            if found.pending_polls <= 0:
                del self.states[name]  # Active again: moto's own answer stands
                return
            found.pending_polls -= 1
        configuration = parsed.get("Configuration", parsed)
        configuration["State"] = found.state
        if found.update_failed:
            configuration["LastUpdateStatus"] = "Failed"
            configuration["LastUpdateStatusReasonCode"] = found.reason_code
            configuration["LastUpdateStatusReason"] = found.reason
        elif found.reason_code:
            configuration["StateReasonCode"] = found.reason_code
            configuration["StateReason"] = found.reason


@contextmanager
def aws_answers(monkeypatch: pytest.MonkeyPatch, account: Account | None = None
                ) -> Iterator[AwsAnswers]:  # fmt: skip
    """Every boto3 client made inside answers as AWS documents (see :class:`AwsAnswers`)."""
    answers = AwsAnswers(account)
    make = boto3.session.Session.client

    def client(self: boto3.session.Session, *args: Any, **kwargs: Any) -> Any:
        made = make(self, *args, **kwargs)
        answers.hook(made)
        return made

    monkeypatch.setattr(boto3.session.Session, "client", client)
    yield answers
