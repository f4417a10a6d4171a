"""From records to answers: a run's cells, claims and verdicts, the report and plots
(notebooks 05 and 07). The metrics and the cost model they use sit low, at the top of the
package (:mod:`labkit.metrics`, :mod:`labkit.cost`): the simulator and AWS use them too.
"""
