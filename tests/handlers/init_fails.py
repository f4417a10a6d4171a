"""A function module whose import fails: every call must be an init error, never a hang."""

raise RuntimeError("init failed: model file missing (on purpose)")


def handler(event, context):  # pragma: no cover - never reached
    return {}
