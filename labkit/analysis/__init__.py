"""From records to answers: metrics, the cost model, claims and verdicts, the report and
plots (notebooks 05 and 07).
"""
