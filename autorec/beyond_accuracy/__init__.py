"""Beyond-accuracy evaluation and knobs: diversity of top-10 lists (and re-rankers that change
it), fairness between user groups (and a FairRec-style attribute head), cold-start subsets.

The metric names and families are in autorec.metrics_extra; docs/beyond_accuracy.md explains
them with their knobs.
"""
