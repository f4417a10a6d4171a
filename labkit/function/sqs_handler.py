"""The Lambda entry point when an SQS queue feeds the function: ``labkit_function.sqs_handler.handler``.

Each record's body is one instance of the event contract (``{"id", "image_b64"}``); the batch
is classified as the direct handler classifies it (``handler.PREDICTOR``), and every
prediction goes, with the moment the invocation began, to the response queue
(``$LABKIT_RESPONSE_QUEUE_URL``), where the load generator sees it: an SQS-triggered function
returns nothing to the sender, so this is how latency keeps its definition (scheduled
arrival to the client seeing the answer). The SQS
client is made at init, as a Lambda function would, so a cold start pays for it.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import boto3

from .handler import PREDICTOR

RESPONSE_QUEUE_URL = os.environ.get("LABKIT_RESPONSE_QUEUE_URL", "")
SQS = boto3.client("sqs")  # AWS_ENDPOINT_URL_SQS points it at a local SQS


def _instance(record: dict[str, Any]) -> dict[str, Any]:
    try:
        body = json.loads(record.get("body", ""))
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {"id": record.get("messageId", "?")}


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    started = time.time()  # epoch seconds: the client places the invocation on its own clock
    records = event.get("Records", []) if isinstance(event, dict) else []
    answer = PREDICTOR.handle({"instances": [_instance(r) for r in records]})
    invocation = getattr(context, "aws_request_id", "")
    messages = [json.dumps({"id": p.get("id"), "label": p.get("label"), "error": p.get("error"),
                            "batch_size": len(records), "invocation": invocation,
                            "started": started})
                for p in answer.get("predictions", [])]  # fmt: skip
    for start in range(0, len(messages), 10):  # SendMessageBatch takes at most 10
        entries = [{"Id": str(i), "MessageBody": body}
                   for i, body in enumerate(messages[start : start + 10])]  # fmt: skip
        SQS.send_message_batch(QueueUrl=RESPONSE_QUEUE_URL, Entries=entries)
    return {}
