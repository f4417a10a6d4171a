"""The discrete-event model of the platform: the simulator, the queue model, and the fit to
the paper's table (notebooks 05 and 08). Calibration against live runs is a study
(:mod:`labkit.studies.calibrate`): it runs the simulated backend.

Every figure it produces is a model's and is labelled so.
"""
