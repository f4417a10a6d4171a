"""Real AWS: the container image and its bundle, deploying it, the account and region, the
queue in front of the function (notebooks 02 and 03).

boto3 only: nothing here runs a function on this machine (that is :mod:`labkit.emulator`).
"""
