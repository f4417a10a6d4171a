"""Studies that run other parts of the kit and weigh their answers: the simulator calibrated
and checked against live cells (notebooks 05 and 08), and where batching should happen
(notebook 09), which runs live cells and the simulator side by side.
"""
