"""The embedded local Lambda: a Docker-free Lambda service on one machine.

Speaks the Lambda Invoke API (boto3 and the AWS CLI work against it with ``endpoint_url``)
and the Runtime API (each instance is a process running the official runtime client), with
cold starts, reuse, concurrency limits, keep-alive, timeouts, memory limits and CloudWatch-
format REPORT lines. Start it with :class:`LocalLambda` or ``labkit emulator``.
"""

from labkit.emulator.config import FunctionConfig
from labkit.emulator.local import EmulatorError, LocalLambda

__all__ = ["EmulatorError", "FunctionConfig", "LocalLambda"]
