"""Tiny handlers for the emulator tests: one per behaviour Lambda must survive."""

import os
import time


def noop(event, context):
    return {"ok": True}


def echo(event, context):
    print(f"echo {event.get('n')}")
    return {
        "event": event,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "function": context.function_name,
        "memory": context.memory_limit_in_mb,
        "request_id": context.aws_request_id,
        "max_concurrency_env": os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY"),
        "pid": os.getpid(),
    }


def sleep(event, context):
    time.sleep(float(event.get("seconds", 0.2)))
    return {"slept": event.get("seconds", 0.2), "pid": os.getpid()}


def boom(event, context):
    raise ValueError("boom: the handler raised")


def die(event, context):
    os._exit(3)


def hog(event, context):
    blocks = [bytearray(1024 * 1024) for _ in range(int(event.get("mb", 400)))]
    for block in blocks:
        block[::4096] = b"x" * len(block[::4096])
    time.sleep(0.5)
    return {"held_mb": len(blocks)}


def big_response(event, context):
    return {"data": "x" * (7 * 1024 * 1024)}


def mnist_like(event, context):
    """Answers like the MNIST function (label 0), slowly; fails batches holding an id ending in 3."""
    ids = [instance["id"] for instance in event["instances"]]
    if any(int(i) % 10 == 3 for i in ids):
        raise ValueError("injected failure")
    time.sleep(0.03)
    return {"predictions": [{"id": i, "label": 0} for i in ids]}


def echo_batch(event, context):
    """Answers every instance of a batch with label 0, at once."""
    return {"predictions": [{"id": i["id"], "label": 0} for i in event["instances"]]}


def long_line(event, context):
    """Writes one line of ``mb`` megabytes (no newline until the end), then answers."""
    import sys

    sys.stdout.write("x" * int(float(event.get("mb", 40)) * 1024 * 1024) + "\n")
    sys.stdout.flush()
    return {"ok": True}


def spawn_hog(event, context):
    """Starts a child process that holds ``mb`` megabytes, and waits for it."""
    import subprocess
    import sys

    code = f"b = bytearray({int(event.get('mb', 800))} * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(30)"
    subprocess.run([sys.executable, "-c", code], check=False)
    return {"ok": True}


def escape(event, context):
    """Starts a child in its own session (out of the instance's process group), writes its
    pid to ``pidfile``, and outlives the function's timeout."""
    import subprocess
    import sys

    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )
    with open(event["pidfile"], "w") as handle:
        handle.write(str(child.pid))
    time.sleep(float(event.get("seconds", 30)))
    return {"ok": True}


def maybe_big(event, context):
    """A too-large response when ``big`` is true, else a small one."""
    if event.get("big"):
        return {"data": "x" * (7 * 1024 * 1024)}
    return {"ok": True, "pid": os.getpid()}
