"""A handler whose init takes a second (a stand-in for importing PyTorch)."""

import time

time.sleep(1.0)


def handler(event, context):
    return {"predictions": [{"id": i["id"], "label": 0} for i in event.get("instances", [])]}
