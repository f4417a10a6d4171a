"""Driving a function: workloads (arrival times), batching policies, the open-loop load
generator, pre-warm and requests through a queue (notebooks 04 and 06).
"""
