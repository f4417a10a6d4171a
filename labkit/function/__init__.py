"""The deployed Lambda function: handler, network definition and event codec.

Everything in this package imports only torch, numpy and the standard library, because it is
copied as it is into the container image's task root (see ``labkit.aws.image``). Nothing here may
import the rest of ``labkit``.
"""
