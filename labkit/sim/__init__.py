"""The discrete-event model of the platform: the simulator, the queue model, calibration
against live runs and the fit to the paper's table (notebooks 05 and 08).

Every figure it produces is a model's and is labelled so.
"""
