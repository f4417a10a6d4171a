"""Talking to an AWS account: the region chain, credentials, and errors that say what to do.

Deploy (:mod:`labkit.aws.deploy`) and the AWS backend (:mod:`labkit.backends.aws`) both go
through here, so they resolve one region the same way and a user sees one kind of message
for one kind of problem, naming the CLI flag or the command that fixes it.

The region is, in order: the ``--region`` flag (a ``region`` parameter), else boto3's own
chain (``AWS_DEFAULT_REGION``, then the profile's ``region`` in ``~/.aws/config``). Nothing
falls back to a default region: deploying in one region and invoking another is the mistake
this prevents. Nothing here prints credentials, and account ids go through :func:`redact`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_ACCOUNT_ID = re.compile(r"(?<!\d)\d{12}(?!\d)")
REGION_HELP = (
    "pass --region REGION (notebooks: aws_region=...), or set AWS_DEFAULT_REGION, or "
    "`aws configure set region REGION`"
)


def redact(text: str) -> str:
    """``text`` with every 12-digit AWS account id replaced by ``<account>``."""
    return _ACCOUNT_ID.sub("<account>", text)


class DeployError(RuntimeError):
    """An AWS step failed; the message says what to do."""


class CredentialsError(DeployError):
    """No usable AWS credentials (missing, expired or invalid)."""


class RegionError(DeployError):
    """No region configured, an unknown one, or the image lives in another region."""


class PermissionDeniedError(DeployError):
    """The credentials lack a permission the step needs."""


class DockerUnavailableError(DeployError):
    """An image must be built or pushed but no Docker engine is reachable."""


class BudgetExceededError(DeployError):
    """The planned experiment is expected to cost more than ``max_budget_usd``."""


class ConcurrencyQuotaError(DeployError):
    """The account cannot give the reserved or provisioned concurrency asked for."""


class FunctionNotReadyError(DeployError):
    """The function to measure does not exist, is not Active, or its alias is not READY."""


_CREDENTIAL_CODES = {
    "ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException",
    "InvalidSignatureException", "SignatureDoesNotMatch", "AuthFailure",
}  # fmt: skip
_PERMISSION_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
SSO_HELP = "run `aws sso login` (with `--profile NAME` if you use one) and try again"


def error_code(error: BaseException) -> str:
    """The AWS error code of a botocore error (``ResourceNotFoundException``,
    ``ExpiredTokenException``, ...), else the exception's class name."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(error).__name__


@contextmanager
def aws_errors(step: str) -> Iterator[None]:
    """Turn botocore's credential, region and permission failures into messages that say
    what to do; other errors pass through unchanged."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        SSOError,
        TokenRetrievalError,
    )

    try:
        yield
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise CredentialsError(
            f"{step}: no AWS credentials found ({type(exc).__name__}). Configure them with "
            "`aws configure`, or `aws sso login --profile NAME` and set AWS_PROFILE, or export "
            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (docs/aws.md)."
        ) from None
    except (TokenRetrievalError, SSOError) as exc:
        raise CredentialsError(
            f"{step}: the SSO session has expired or cannot be read ({type(exc).__name__}); "
            f"{SSO_HELP}."
        ) from None
    except NoRegionError:
        raise RegionError(f"{step}: no AWS region configured; {REGION_HELP}.") from None
    except EndpointConnectionError as exc:
        raise RegionError(
            f"{step}: could not reach {redact(str(getattr(exc, 'kwargs', {}).get('endpoint_url', 'AWS')))}; "
            f"check the network and the region ({REGION_HELP})."
        ) from None
    except ClientError as exc:
        code = error_code(exc)
        message = redact(exc.response.get("Error", {}).get("Message", str(exc)))
        if code in _CREDENTIAL_CODES:
            raise CredentialsError(
                f"{step}: AWS rejected the credentials ({code}: {message}). Refresh them "
                f"(`aws sso login`, or new access keys) and try again."
            ) from None
        if code in _PERMISSION_CODES:
            raise PermissionDeniedError(
                f"{step}: permission denied ({code}: {message}). The identity needs the ECR, "
                "Lambda and IAM permissions listed in docs/aws.md (with --role-arn, no IAM "
                "write permission is needed)."
            ) from None
        raise


def known_regions() -> list[str]:
    """Regions where Lambda runs, from botocore's own endpoint data (no network)."""
    import boto3

    return boto3.session.Session().get_available_regions("lambda")


def resolve_region(session: Any, region: str | None = None) -> str:
    """The region to work in: ``region``, else the session's chain; checked against the
    regions Lambda has, so a typo fails here with a suggestion, not later as a timeout."""
    chosen = region or getattr(session, "region_name", None)
    if not chosen:
        raise RegionError(f"no AWS region configured; {REGION_HELP}.")
    known = known_regions()
    if known and chosen not in known:
        close = difflib.get_close_matches(chosen, known, n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        raise RegionError(f"unknown AWS region {chosen!r}.{hint} ({REGION_HELP})")
    return str(chosen)


def check_credentials(session: Any, region: str, step: str = "checking AWS credentials") -> str:
    """Fail early, with advice, when credentials are missing, expired or invalid; returns the
    caller's ARN, redacted."""
    with aws_errors(step):
        identity = session.client("sts", region_name=region).get_caller_identity()
    return redact(str(identity.get("Arn", "")))


#: What to do about a function Lambda marked ``Failed`` (or ``Inactive``), by its
#: ``StateReasonCode`` or ``LastUpdateStatusReasonCode``
#: (https://docs.aws.amazon.com/lambda/latest/dg/functions-states.html).
STATE_FIXES = {
    "ImageAccessDenied": "Lambda cannot pull the image: it must be in the function's account "
    "and region, and the repository's policy and the caller must allow ecr:BatchGetImage and "
    "ecr:GetDownloadUrlForLayer",
    "ImageDeleted": "the function's image was deleted from ECR: push it again with "
    "`labkit deploy up`",
    "InvalidImage": "Lambda cannot run this image: build it for the function's architecture as "
    "a single-platform image (`labkit deploy up` builds it so) and deploy again",
    "InsufficientRolePermissions": "the function's role lacks a permission Lambda needs for "
    "this configuration; give it to the role named in `labkit deploy plan`",
    "Idle": "the function was idle long enough to go Inactive; invoking or updating it wakes it "
    "(`labkit run` and `labkit deploy up` do)",
}
_UNKNOWN_FIX = "change what AWS's reason names, then run `labkit deploy up` again"


def explain_state(name: str, configuration: dict[str, Any]) -> str:
    """One sentence on a function that is not ``Active`` with a successful last update: its
    state, AWS's reason code and reason, and what to do (:data:`STATE_FIXES`)."""
    code = configuration.get("StateReasonCode") or configuration.get("LastUpdateStatusReasonCode")
    reason = configuration.get("StateReason") or configuration.get("LastUpdateStatusReason") or ""
    said = f"; AWS says {code}: {reason}" if code or reason else ""
    return (f"the function {name} is {configuration.get('State')} (last update "
            f"{configuration.get('LastUpdateStatus')}){said}. {STATE_FIXES.get(code or '', _UNKNOWN_FIX)}")  # fmt: skip
