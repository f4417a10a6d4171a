"""Functions fed by an SQS event-source mapping (tests/emulator/test_event_sources.py)."""

import json


def batch(event, context):
    """Prints the batch it got; a message whose body is "poison" fails it (the whole batch)."""
    bodies = [r["body"] for r in event["Records"]]
    print(
        "BATCH "
        + json.dumps(
            {"size": len(bodies), "bodies": bodies, "source": event["Records"][0]["eventSource"]}
        )
    )
    if "poison" in bodies:
        raise ValueError("poison message")
    return {}


def partial(event, context):
    """Reports the poison message alone as failed (ReportBatchItemFailures)."""
    print("BATCH " + json.dumps({"size": len(event["Records"])}))
    return {
        "batchItemFailures": [
            {"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "poison"
        ]
    }


def slow(event, context):
    """Takes 0.4 s per batch, so a backlog builds and the mapping's pollers scale."""
    import time

    time.sleep(0.4)
    print("BATCH " + json.dumps({"size": len(event["Records"])}))
    return {}
