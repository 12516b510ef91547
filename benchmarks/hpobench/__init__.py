"""Recorded learning curves of built-in specs and a surrogate of them (issue 28).

`record` trains configurations drawn uniformly from a spec's space to their full epoch budget
and keeps each whole curve in `<spec>.jsonl.gz` here; `surrogate` models those curves as a
function of the configuration, so that a search (any sampler and pruner) can be simulated on
it in seconds, with its cost counted in epochs.
"""
