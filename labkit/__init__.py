"""labkit: what batching does to ML inference on serverless platforms, measured and explained."""

__version__ = "0.1.0"
