"""Studies that run other parts of the kit and weigh their answers: where batching should
happen (notebook 09), which runs live cells and the simulator side by side.
"""
